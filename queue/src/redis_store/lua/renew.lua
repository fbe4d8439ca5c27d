-- ARGV: ttl ms, then id/epoch pairs. Returns per pair 'lost' or 'held:<pause>:<cancel>'.
local ttl = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id, epoch = ARGV[i], ARGV[i + 1]
  if fenced(id, epoch) then
    out[#out + 1] = 'lost'
  else
    local key = jobkey(id)
    local expires = now + ttl
    redis.call('HSET', key, 'lease_expires_at', fmt(expires))
    redis.call('ZADD', base .. ':leases', expires, id)
    -- An absent request flag is '0' (new jobs do not store it).
    local pause = redis.call('HGET', key, 'pause_requested') or '0'
    local cancel = redis.call('HGET', key, 'cancel_requested') or '0'
    out[#out + 1] = 'held:' .. pause .. ':' .. cancel
  end
end
return out
