INSERT INTO contacts (email, job_id, at) VALUES (?1, ?2, ?3)
ON CONFLICT (email) DO UPDATE SET job_id = excluded.job_id, at = excluded.at
WHERE contacts.at < excluded.at
