WITH picked AS (
  SELECT id FROM jobs WHERE status = 'queued'
    AND run_at <= drover_now()
    AND queue <> ALL (ARRAY(SELECT name FROM queues WHERE paused)) /* queue filter */
  ORDER BY priority, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
upd AS (
  UPDATE jobs j SET status = 'running', attempt = j.attempt + 1,
    lease_epoch = j.lease_epoch + 1, lease_owner = $1,
    lease_expires_at = drover_now() + $2, pause_requested = false,
    cancel_requested = false, started_at = coalesce(j.started_at, drover_now()),
    updated_at = drover_now(), event_seq = j.event_seq + 1
  FROM picked WHERE j.id = picked.id RETURNING j.*),
ev AS (
  INSERT INTO job_events (job_id, seq, kind, data, created_at)
  SELECT id, event_seq, 'status', jsonb_build_object('status', 'running',
    'attempt', attempt, 'worker', lease_owner), updated_at FROM upd)
SELECT * FROM upd ORDER BY priority, run_at, id
