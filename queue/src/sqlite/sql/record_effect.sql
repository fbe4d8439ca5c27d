INSERT INTO effects (job_id, key, result, epoch, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (job_id, key) DO NOTHING
