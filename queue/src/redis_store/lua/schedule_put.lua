-- KEYS: the schedule's hash, the due zset, the id set. ARGV: mode (`insert` or `replace`),
-- the expected version (replace), spec JSON, state JSON, due_at ms ('' for none), id.
-- Answers 1 when written, 0 when the id is taken (insert) or the version moved (replace).
local ver = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == 'insert' then
  if ver then return 0 end
  ver = 1
else
  if (not ver) or ver ~= ARGV[2] then return 0 end
  ver = tonumber(ver) + 1
end
redis.call('HSET', KEYS[1], 'spec', ARGV[3], 'state', ARGV[4], 'version', ver)
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
end
redis.call('SADD', KEYS[3], ARGV[6])
return 1
