SELECT * FROM checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT 1
