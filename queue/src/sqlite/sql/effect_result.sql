SELECT result FROM effects WHERE job_id = ? AND key = ?
