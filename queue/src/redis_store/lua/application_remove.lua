-- KEYS: the user's ledger (hash), posting index (zset), counted entries (zset).
-- ARGV: the posting key, the expected outcome. Removes the entry only at that outcome.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local nl = string.find(cur, '\n', 1, true)
if (not nl) or string.sub(cur, 1, nl - 1) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
