WITH j AS (
  UPDATE jobs SET event_seq = event_seq + 1, updated_at = drover_now()
  WHERE id = $1 RETURNING id, event_seq, updated_at)
INSERT INTO job_events (job_id, seq, kind, data, created_at)
SELECT id, event_seq, $2, $3, updated_at FROM j RETURNING seq
