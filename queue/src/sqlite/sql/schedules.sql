SELECT id, spec, state, version, due_at FROM schedules ORDER BY id
