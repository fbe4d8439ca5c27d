INSERT INTO jobs (id, queue, kind, goal, config, priority, created_by,
  idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout,
  api_timeout, status, event_seq, created_at, updated_at)
/* rows */
RETURNING *
