SELECT email, reason, note, created_at FROM suppressions WHERE email IN (SELECT value FROM json_each(?1))
