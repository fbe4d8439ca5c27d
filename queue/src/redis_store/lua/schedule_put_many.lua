-- The evaluator's write after a chunk of schedules, in one script (atomic for the chunk).
-- KEYS: the due zset, the id set, then one hash per schedule. ARGV: per schedule, in KEYS
-- order, 5 values: the expected version, spec JSON, state JSON, due_at ms ('' for none), id.
-- Answers, per schedule, 1 when written, 0 when its version moved or it is gone.
local out = {}
for i = 3, #KEYS do
  local a = (i - 3) * 5
  local ver = redis.call('HGET', KEYS[i], 'version')
  if ver and ver == ARGV[a + 1] then
    redis.call('HSET', KEYS[i], 'spec', ARGV[a + 2], 'state', ARGV[a + 3],
      'version', tonumber(ver) + 1)
    if ARGV[a + 4] == '' then
      redis.call('ZREM', KEYS[1], ARGV[a + 5])
    else
      redis.call('ZADD', KEYS[1], ARGV[a + 4], ARGV[a + 5])
    end
    redis.call('SADD', KEYS[2], ARGV[a + 5])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
