INSERT INTO item_outputs (job_id, step, idx, visit, output) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (job_id, step, idx) DO UPDATE SET visit = excluded.visit, output = excluded.output
