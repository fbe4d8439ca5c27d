DELETE FROM effects WHERE job_id = ?
