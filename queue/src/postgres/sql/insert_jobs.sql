WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[],
    $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[],
    $10::bigint[], $11::int[], $12::bigint[], $13::bigint[], $14::bigint[])
  WITH ORDINALITY AS t(id, queue, kind, goal, config, priority, created_by,
    idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout,
    api_timeout, ord)),
ins AS (
  INSERT INTO jobs (id, queue, kind, goal, config, priority, created_by,
    idempotency_key, fingerprint, run_at, max_attempts, job_timeout, step_timeout,
    api_timeout, status, event_seq, created_at, updated_at)
  SELECT id, queue, kind, goal, config::jsonb, priority, created_by,
    idempotency_key, fingerprint, coalesce(run_at, drover_now()), max_attempts,
    job_timeout, step_timeout, api_timeout, 'queued', 1, drover_now(), drover_now()
  FROM input ORDER BY ord
  ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING *),
ev AS (
  INSERT INTO job_events (job_id, seq, kind, data, created_at)
  SELECT id, 1, 'status', jsonb_build_object('status', 'queued', 'attempt', 0),
    created_at FROM ins),
woken AS (SELECT pg_notify($15, q) FROM (SELECT DISTINCT queue AS q FROM ins) d)
SELECT *, (SELECT count(*) FROM woken) AS woken FROM ins
