-- KEYS: the user's ledger (hash posting → entry), counted entries (zset).
-- ARGV: the posting key, the expected outcome, the new entry, counted (1/0).
-- An entry is `<outcome>\n…`: written only when its outcome is the expected one.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local nl = string.find(cur, '\n', 1, true)
if (not nl) or string.sub(cur, 1, nl - 1) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] == '0' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
