SELECT * FROM jobs WHERE idempotency_key IN (SELECT value FROM json_each(?))
