SELECT resource, rate_limit, remaining, reset_at, blocked_until, version, updated_at
FROM rate_limits WHERE resource = ?1
