SELECT name, content_type, length(data) AS size, created_at FROM artifacts
WHERE job_id = $1 ORDER BY name
