FROM jobs INDEXED BY jobs_by_queue WHERE status = 'queued' AND queue = ?4
