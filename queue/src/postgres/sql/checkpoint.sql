WITH j AS (
  UPDATE jobs SET event_seq = event_seq + 1, updated_at = drover_now()
  WHERE id = $1 AND lease_epoch = $2 AND status = 'running'
  RETURNING id, event_seq, updated_at),
c AS (
  INSERT INTO checkpoints (job_id, seq, step, state, compressed, created_at)
  SELECT j.id, coalesce((SELECT max(seq) FROM checkpoints WHERE job_id = $1), 0) + 1,
    $3, $4, $5, j.updated_at FROM j RETURNING seq),
d AS (
  DELETE FROM checkpoints WHERE job_id = $1
    AND seq <= (SELECT seq FROM c) - $6),
e AS (
  INSERT INTO job_events (job_id, seq, kind, data, created_at)
  SELECT j.id, j.event_seq, 'checkpoint',
    jsonb_build_object('seq', c.seq, 'step', $3::text, 'size', $7::bigint),
    j.updated_at FROM j, c)
SELECT seq FROM c
