SELECT * FROM workers WHERE last_heartbeat >= drover_now() - $1 ORDER BY id
