SELECT * FROM jobs WHERE idempotency_key = ANY($1)
