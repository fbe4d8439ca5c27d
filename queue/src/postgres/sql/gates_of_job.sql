SELECT body FROM gates WHERE job_id = $1 ORDER BY opened_at, key
