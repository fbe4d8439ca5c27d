SELECT step, idx, visit, output FROM item_outputs WHERE job_id = $1 AND step = $2 AND idx >= $3 ORDER BY idx LIMIT $4
