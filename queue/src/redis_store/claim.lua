-- ARGV: owner, lease ttl ms, limit, events channel. Leases due jobs by priority, then run_at,
-- then id (members with equal scores sort by id, and UUIDv7 ids sort by time). Returns
-- each leased job's hash (HGETALL), so the claim is one round trip.
local owner, ttl, limit, echan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', base .. ':paused') == 1 then return {} end
local claimed = {}
for p = 0, 2 do
  local left = limit - #claimed
  if left <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', base .. ':ready:' .. p, '-inf', fmt(now), 'LIMIT', 0, left)
  for _, id in ipairs(ids) do
    local key = jobkey(id)
    local expires = now + ttl
    redis.call('ZREM', base .. ':ready:' .. p, id)
    redis.call('HINCRBY', key, 'lease_epoch', 1)
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'status', 'running', 'lease_owner', owner, 'lease_expires_at', fmt(expires),
      'pause_requested', '0', 'cancel_requested', '0', 'updated_at', fmt(now))
    if not redis.call('HGET', key, 'started_at') then redis.call('HSET', key, 'started_at', fmt(now)) end
    redis.call('HINCRBY', key, 'ver', 1)
    redis.call('ZREM', base .. ':status:queued', id)
    redis.call('ZADD', base .. ':status:running', 0, id)
    redis.call('ZADD', base .. ':leases', expires, id)
    add_event(id, 'status', cjson.encode({ status = 'running', attempt = attempt, worker = owner }))
    claimed[#claimed + 1] = redis.call('HGETALL', key)
  end
end
announce(echan)
return claimed
