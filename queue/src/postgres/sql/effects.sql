SELECT * FROM effects WHERE job_id = $1 ORDER BY created_at, key
