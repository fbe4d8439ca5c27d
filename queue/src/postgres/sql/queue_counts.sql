SELECT queue, status, priority, count(*) AS n,
  min(run_at) FILTER (WHERE status = 'queued' AND run_at <= $1) AS oldest
FROM jobs WHERE status IN ('queued', 'running', 'paused', 'waiting')
GROUP BY queue, status, priority
