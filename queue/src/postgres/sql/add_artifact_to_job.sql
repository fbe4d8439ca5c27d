WITH j AS (
  UPDATE jobs SET artifacts = $2, event_seq = event_seq + 1,
    updated_at = $4 WHERE id = $1 RETURNING id, event_seq)
INSERT INTO job_events (job_id, seq, kind, data, created_at)
SELECT id, event_seq, 'artifact', $3, $4 FROM j RETURNING seq
