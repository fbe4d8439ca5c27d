WITH locked AS MATERIALIZED (
  SELECT j.id FROM jobs j
  JOIN unnest($1::uuid[], $2::bigint[]) AS f(id, epoch)
    ON j.id = f.id AND j.lease_epoch = f.epoch WHERE j.status = 'running'
  ORDER BY j.id FOR UPDATE OF j)
UPDATE jobs j SET lease_expires_at = drover_now() + $3 FROM locked
WHERE j.id = locked.id
RETURNING j.id, j.lease_epoch, j.pause_requested, j.cancel_requested
