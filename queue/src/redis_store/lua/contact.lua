-- KEYS: the contacts hash. ARGV: the address, the contact's time (ms), the value
-- (`<at ms>\n<job id>`). Keeps the latest contact: answers 1 when written, 0 when the
-- stored one is as late or later.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local at = tonumber(string.match(old, '^(%-?%d+)'))
  if at and at >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
