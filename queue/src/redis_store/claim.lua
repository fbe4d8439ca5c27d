-- ARGV: owner, lease ttl ms, limit, events channel. Leases due jobs by priority, then run_at,
-- then id (members with equal scores sort by id, and UUIDv7 ids sort by time). Returns
-- each leased job's hash (HGETALL), so the claim is one round trip. Index moves are one
-- variadic call per index for the whole batch.
local owner, ttl, limit, echan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', base .. ':paused') == 1 then return {} end
local claimed = {}
local at, expires = fmt(now), fmt(now + ttl)
for p = 0, 2 do
  local left = limit - #claimed
  if left <= 0 then break end
  local ready = base .. ':ready:' .. p
  local ids = redis.call('ZRANGEBYSCORE', ready, '-inf', at, 'LIMIT', 0, left)
  if #ids > 0 then
    zrem_all(ready, ids)
    zrem_all(base .. ':status:queued', ids)
    zadd_all(base .. ':status:running', 0, ids)
    zadd_all(base .. ':leases', expires, ids)
    for _, id in ipairs(ids) do
      local key = jobkey(id)
      local v = redis.call('HMGET', key, 'lease_epoch', 'attempt', 'started_at', 'ver', 'event_seq')
      local attempt, seq = tonumber(v[2]) + 1, tonumber(v[5]) + 1
      redis.call('HSET', key, 'status', 'running', 'lease_epoch', tonumber(v[1]) + 1,
        'attempt', attempt, 'lease_owner', owner, 'lease_expires_at', expires,
        'pause_requested', '0', 'cancel_requested', '0', 'updated_at', at,
        'started_at', v[3] or at, 'ver', tonumber(v[4]) + 1, 'event_seq', seq)
      put_event(id, seq, 'status', cjson.encode({ status = 'running', attempt = attempt, worker = owner }))
      claimed[#claimed + 1] = redis.call('HGETALL', key)
    end
  end
end
announce(echan)
return claimed
