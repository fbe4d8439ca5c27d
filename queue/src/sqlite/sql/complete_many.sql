WITH c(id, epoch, result) AS (/* rows */)
UPDATE jobs SET status = 'completed', result = c.result,
  lease_expires_at = NULL, updated_at = ?, finished_at = ?, event_seq = event_seq + 1
FROM c WHERE jobs.id = c.id
  AND jobs.lease_epoch = c.epoch AND jobs.status = 'running'
RETURNING jobs.id, jobs.lease_epoch, jobs.event_seq, jobs.attempt,
  jobs.lease_owner
