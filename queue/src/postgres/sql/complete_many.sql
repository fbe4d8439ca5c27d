WITH f AS (
  SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[])
  AS f(id, epoch, result)),
locked AS MATERIALIZED (
  SELECT jobs.id FROM jobs JOIN f ON jobs.id = f.id
    AND jobs.lease_epoch = f.epoch WHERE jobs.status = 'running'
  ORDER BY jobs.id FOR UPDATE OF jobs),
j AS (
  UPDATE jobs SET status = 'completed', result = f.result::jsonb,
    lease_expires_at = NULL, updated_at = drover_now(),
    finished_at = drover_now(), event_seq = jobs.event_seq + 1
  FROM f, locked WHERE jobs.id = locked.id AND f.id = locked.id
    AND jobs.lease_epoch = f.epoch AND jobs.status = 'running'
  RETURNING jobs.id, jobs.lease_epoch, jobs.event_seq, jobs.attempt,
    jobs.lease_owner, jobs.updated_at),
e AS (
  INSERT INTO job_events (job_id, seq, kind, data, created_at)
  SELECT id, event_seq, 'status', jsonb_build_object('status', 'completed',
    'attempt', attempt, 'worker', lease_owner), updated_at FROM j)
SELECT id, lease_epoch FROM j
