WITH j AS (
  SELECT id FROM jobs WHERE id = $1 AND lease_epoch = $2
    AND status = 'running' FOR SHARE),
ins AS (
  INSERT INTO effects (job_id, key, result, epoch, created_at)
  SELECT id, $3, $4, $2, drover_now() FROM j
  ON CONFLICT (job_id, key) DO NOTHING RETURNING result)
SELECT result FROM ins UNION ALL
SELECT e.result FROM effects e, j WHERE e.job_id = j.id AND e.key = $3 LIMIT 1
