SELECT user_id, posting_key, job_id, outcome, counted, claimed_at, settled_at
FROM applications WHERE user_id = ?1 AND posting_key = ?2
