SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < drover_now()
ORDER BY lease_expires_at LIMIT $1
