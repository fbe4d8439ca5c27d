SELECT step, idx, visit, output FROM item_outputs WHERE job_id = ? AND step = ? AND idx >= ? ORDER BY idx LIMIT ?
