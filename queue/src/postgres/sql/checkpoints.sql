SELECT * FROM checkpoints WHERE job_id = $1 ORDER BY seq
