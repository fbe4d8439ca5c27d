DELETE FROM applications WHERE user_id = ?1 AND posting_key = ?2 AND outcome = ?3
