SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < ?
ORDER BY lease_expires_at LIMIT ?
