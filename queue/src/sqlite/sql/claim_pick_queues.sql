FROM jobs WHERE status = 'queued'
  AND queue IN (SELECT value FROM json_each(?4))
