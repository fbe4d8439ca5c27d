INSERT INTO rate_limits (resource, rate_limit, remaining, reset_at, blocked_until, version, updated_at)
VALUES ($1, $2, $3, $4, $5, 1, $6)
ON CONFLICT (resource) DO NOTHING
