SELECT
    (SELECT version FROM application_users WHERE user_id = ?1) AS version,
    (SELECT count(*) FROM applications
     WHERE user_id = ?1 AND counted = 1 AND claimed_at >= ?2 AND claimed_at < ?3) AS day,
    (SELECT count(*) FROM applications
     WHERE user_id = ?1 AND counted = 1 AND claimed_at >= ?4 AND claimed_at < ?5) AS month
