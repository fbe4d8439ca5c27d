-- KEYS: the suppressions hash, their address index. ARGV: the address. Answers 1 when it
-- was suppressed.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
