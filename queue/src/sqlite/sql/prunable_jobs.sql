SELECT id FROM jobs WHERE (status = 'completed' AND finished_at <= ?1)
  OR (status = 'failed' AND finished_at <= ?2)
  OR (status = 'cancelled' AND finished_at <= ?3) LIMIT ?4
