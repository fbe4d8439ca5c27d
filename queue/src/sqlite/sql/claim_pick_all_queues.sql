FROM jobs INDEXED BY jobs_ready WHERE status = 'queued'
