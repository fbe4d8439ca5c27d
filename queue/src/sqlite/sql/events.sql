SELECT * FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?
