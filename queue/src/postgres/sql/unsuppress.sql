DELETE FROM suppressions WHERE email = $1
