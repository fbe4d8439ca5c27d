DELETE FROM artifacts WHERE job_id = ?
