INSERT INTO applications
    (user_id, posting_key, job_id, outcome, counted, claimed_at, settled_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, posting_key) DO NOTHING
