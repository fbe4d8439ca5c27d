DELETE FROM leaders WHERE name = ? AND holder = ?
