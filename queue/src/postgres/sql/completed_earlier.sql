SELECT id, lease_epoch FROM jobs WHERE id = ANY($1) AND status = 'completed'
