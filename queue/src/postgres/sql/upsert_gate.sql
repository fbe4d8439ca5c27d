INSERT INTO gates (job_id, key, status, opened_at, deadline, body)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (job_id, key) DO UPDATE SET status = $3, deadline = $5, body = $6
