-- KEYS: the user's ledger version (a string; absent: 0), ledger (hash posting → entry),
-- posting index (zset read by lex), counted entries (zset, score claimed_at ms).
-- ARGV: the expected version, the posting key, the entry, claimed_at ms, counted (1/0).
-- Answers 1 when stored (the version is bumped), 0 when the version moved, 2 when the
-- posting is in the ledger already (nothing written).
local ver = tonumber(redis.call('GET', KEYS[1]) or '0')
if ver ~= tonumber(ARGV[1]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 2 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[2])
if ARGV[5] == '1' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2]) end
redis.call('SET', KEYS[1], ver + 1)
return 1
