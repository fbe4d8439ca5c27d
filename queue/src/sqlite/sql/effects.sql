SELECT * FROM effects WHERE job_id = ? ORDER BY created_at, key
