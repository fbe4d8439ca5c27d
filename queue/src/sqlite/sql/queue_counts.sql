SELECT queue, status, priority, count(*) AS n,
  min(CASE WHEN status = 'queued' AND run_at <= ?1 THEN run_at END) AS oldest
FROM jobs WHERE status IN ('queued', 'running', 'paused', 'waiting')
GROUP BY queue, status, priority
