DELETE FROM checkpoints WHERE job_id = ?
