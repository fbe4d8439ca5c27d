INSERT INTO workers (id, host, pid, slots, busy, started_at, last_heartbeat)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
  slots = excluded.slots, busy = excluded.busy, last_heartbeat = excluded.last_heartbeat
