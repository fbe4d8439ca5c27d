SELECT DISTINCT g.job_id FROM (
  SELECT job_id FROM gates WHERE status = 'open' AND deadline <= ?1
  ORDER BY deadline LIMIT ?2) g
JOIN jobs j ON j.id = g.job_id
WHERE j.status NOT IN ('completed', 'failed', 'cancelled')
