UPDATE jobs SET pause_requested = ?, cancel_requested = ?, lease_owner = ?,
  lease_expires_at = ?, updated_at = ?
WHERE id = ?
