SELECT email, job_id, at FROM contacts WHERE email IN (SELECT value FROM json_each(?1))
