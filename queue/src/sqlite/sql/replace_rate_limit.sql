UPDATE rate_limits
SET rate_limit = ?2, remaining = ?3, reset_at = ?4, blocked_until = ?5, version = version + 1,
    updated_at = ?6
WHERE resource = ?1 AND version = ?7
