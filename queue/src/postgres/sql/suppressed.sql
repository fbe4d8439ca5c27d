SELECT email, reason, note, created_at FROM suppressions WHERE email = ANY($1)
