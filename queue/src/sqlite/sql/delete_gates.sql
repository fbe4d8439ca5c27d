DELETE FROM gates WHERE job_id = ?
