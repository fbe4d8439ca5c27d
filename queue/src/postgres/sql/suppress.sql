INSERT INTO suppressions (email, reason, note, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (email) DO NOTHING
