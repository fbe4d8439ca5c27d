WITH doomed AS (
  SELECT id FROM jobs
  WHERE (status = 'completed' AND finished_at <= drover_now() - $1)
    OR (status = 'failed' AND finished_at <= drover_now() - $2)
    OR (status = 'cancelled' AND finished_at <= drover_now() - $3)
  LIMIT $4 FOR UPDATE SKIP LOCKED),
e AS (DELETE FROM job_events WHERE job_id IN (SELECT id FROM doomed)),
c AS (DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM doomed)),
o AS (DELETE FROM item_outputs WHERE job_id IN (SELECT id FROM doomed)),
f AS (DELETE FROM effects WHERE job_id IN (SELECT id FROM doomed)),
a AS (DELETE FROM artifacts WHERE job_id IN (SELECT id FROM doomed)),
g AS (DELETE FROM gates WHERE job_id IN (SELECT id FROM doomed))
DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id
