SELECT count(*) FROM jobs WHERE queue = $1
  AND status IN ('queued', 'running', 'paused')
