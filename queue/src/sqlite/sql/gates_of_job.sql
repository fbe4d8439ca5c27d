SELECT body FROM gates WHERE job_id = ? ORDER BY opened_at, key
