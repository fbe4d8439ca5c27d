SELECT DISTINCT g.job_id FROM (
  SELECT job_id FROM gates WHERE status = 'open' AND deadline <= drover_now()
  ORDER BY deadline LIMIT $1) g
JOIN jobs j ON j.id = g.job_id
WHERE j.status NOT IN ('completed', 'failed', 'cancelled')
