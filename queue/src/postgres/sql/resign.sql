DELETE FROM leaders WHERE name = $1 AND holder = $2
