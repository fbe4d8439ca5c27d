SELECT id, spec, state, version, due_at FROM schedules
WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2
