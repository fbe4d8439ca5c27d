SELECT g.body FROM gates g JOIN jobs j ON j.id = g.job_id
WHERE g.status = $1
  AND (g.opened_at, g.job_id, g.key) > ($2, $3, $4)
  AND j.status NOT IN ('completed', 'failed', 'cancelled')
ORDER BY g.opened_at, g.job_id, g.key
LIMIT $5
