UPDATE jobs SET status = 'running', attempt = attempt + 1,
  lease_epoch = lease_epoch + 1, lease_owner = ?1, lease_expires_at = ?2,
  pause_requested = 0, cancel_requested = 0,
  started_at = coalesce(started_at, ?3), updated_at = ?3, event_seq = event_seq + 1
WHERE id IN (SELECT id /* pick */ AND run_at <= ?3
  AND queue NOT IN (SELECT name FROM queues WHERE paused)
  ORDER BY priority, run_at, id LIMIT ?5)
RETURNING *
