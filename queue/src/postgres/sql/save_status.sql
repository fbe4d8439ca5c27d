WITH j AS (
  UPDATE jobs SET status = $2, attempt = $3, run_at = $4, result = $5,
    error = $6, lease_owner = $7, lease_expires_at = $8, pause_requested = $9,
    cancel_requested = $10, updated_at = drover_now(),
    finished_at = CASE WHEN $11 THEN coalesce(finished_at, drover_now()) END,
    event_seq = event_seq + 1
  WHERE id = $1 RETURNING *),
e AS (
  INSERT INTO job_events (job_id, seq, kind, data, created_at)
  SELECT id, event_seq, 'status', $12, updated_at FROM j)
SELECT * FROM j
