INSERT INTO schedules (id, spec, state, version, due_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING
