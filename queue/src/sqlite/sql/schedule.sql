SELECT id, spec, state, version, due_at FROM schedules WHERE id = ?1
