SELECT * FROM workers WHERE last_heartbeat >= ? ORDER BY id
