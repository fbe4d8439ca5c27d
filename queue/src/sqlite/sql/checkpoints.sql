SELECT * FROM checkpoints WHERE job_id = ? ORDER BY seq
