UPDATE jobs SET pause_requested = $2, cancel_requested = $3,
  lease_owner = $4, lease_expires_at = $5, updated_at = drover_now()
WHERE id = $1 RETURNING *
