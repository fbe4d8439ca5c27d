SELECT coalesce(max(seq), 0) + 1 FROM checkpoints WHERE job_id = ?
