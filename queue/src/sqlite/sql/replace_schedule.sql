UPDATE schedules SET spec = ?2, state = ?3, version = version + 1, due_at = ?4
WHERE id = ?1 AND version = ?5
