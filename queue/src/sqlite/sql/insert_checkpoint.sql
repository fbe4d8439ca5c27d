INSERT INTO checkpoints (job_id, seq, step, state, compressed, created_at)
VALUES (?, ?, ?, ?, ?, ?)
