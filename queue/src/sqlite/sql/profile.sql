SELECT user_id, profile, created_at, updated_at FROM profiles WHERE user_id = ?1
