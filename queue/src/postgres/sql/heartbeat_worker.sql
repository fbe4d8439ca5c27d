INSERT INTO workers (id, host, pid, slots, busy, started_at, last_heartbeat)
VALUES ($1, $2, $3, $4, $5, $6, drover_now()) ON CONFLICT (id) DO UPDATE SET
  slots = excluded.slots, busy = excluded.busy, last_heartbeat = excluded.last_heartbeat
