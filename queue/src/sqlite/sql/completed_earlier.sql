SELECT 1 FROM jobs WHERE id = ? AND lease_epoch = ? AND status = 'completed'
