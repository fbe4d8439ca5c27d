UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_epoch = ?
  AND status = 'running' RETURNING pause_requested, cancel_requested
