UPDATE profiles SET profile = ?2, updated_at = ?3 WHERE user_id = ?1
