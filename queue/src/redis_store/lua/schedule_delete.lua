-- KEYS: the schedule's hash, the due zset, the id set. ARGV: id. Answers 1 when deleted.
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return n
