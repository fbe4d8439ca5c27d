INSERT INTO queues (name, paused, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
  updated_at = excluded.updated_at
