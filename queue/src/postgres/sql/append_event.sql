WITH j AS (
  UPDATE jobs SET event_seq = event_seq + 1, updated_at = drover_now(),
    progress = CASE WHEN $3 = 'progress' THEN $4 ELSE progress END
  WHERE id = $1 AND lease_epoch = $2 AND status = 'running'
  RETURNING id, event_seq, updated_at)
INSERT INTO job_events (job_id, seq, kind, data, created_at)
SELECT id, event_seq, $3, $4, updated_at FROM j RETURNING seq
