-- KEYS: the suppressions hash, their address index (a zset read by lex). ARGV: the
-- address, the entry (JSON). Answers 1 when new, 0 when the address was suppressed (the
-- entry stays as it was).
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
