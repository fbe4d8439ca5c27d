UPDATE jobs SET status = ?, attempt = ?, run_at = ?, result = ?, error = ?,
  lease_owner = ?, lease_expires_at = ?, pause_requested = ?, cancel_requested = ?,
  updated_at = ?, finished_at = coalesce(finished_at, ?)
WHERE id = ?
