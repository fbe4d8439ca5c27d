SELECT email, reason, note, created_at FROM suppressions
WHERE email > $1 ORDER BY email LIMIT $2
