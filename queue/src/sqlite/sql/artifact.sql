SELECT * FROM artifacts WHERE job_id = ? AND name = ?
