SELECT count(*) FROM jobs WHERE queue = ?
  AND status IN ('queued', 'running', 'paused')
