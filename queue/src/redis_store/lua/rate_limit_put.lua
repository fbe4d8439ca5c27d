-- KEYS: the resource's hash, the set of resources. ARGV: the expected version ('' when no
-- row is expected), the resource, then limit, remaining, reset_at ms, blocked_until ms
-- ('' for unknown: the field is removed) and updated_at ms.
-- Answers 1 when written (the version becomes expected + 1, or 1), 0 when the version
-- moved (or a row exists where none was expected).
local ver = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if ver then return 0 end
  ver = 1
else
  if (not ver) or ver ~= ARGV[1] then return 0 end
  ver = tonumber(ver) + 1
end
local fields = {'limit', 'remaining', 'reset_at', 'blocked_until'}
for i, field in ipairs(fields) do
  local value = ARGV[2 + i]
  if value == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, value)
  end
end
redis.call('HSET', KEYS[1], 'version', ver, 'updated_at', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
