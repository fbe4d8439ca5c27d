SELECT email, job_id, at FROM contacts WHERE email = ANY($1)
