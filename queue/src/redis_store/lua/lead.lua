-- KEYS[1]: the leadership key. ARGV: holder, ttl ms. 1 when held after the call.
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
