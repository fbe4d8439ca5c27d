-- ARGV: owner, lease ttl ms, limit, events channel. Leases due jobs by priority, then run_at,
-- then id (members with equal scores sort by id, and UUIDv7 ids sort by time). Returns
-- each leased job's hash as read before the claim (HGETALL) followed by the fields the
-- claim wrote (a later pair wins), so the claim is one round trip and each hash is read
-- once. Index moves are one variadic call per index for the whole batch.
local owner, ttl, limit, echan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', base .. ':paused') == 1 then return {} end
local claimed, leased = {}, {}
local at, expires = fmt(now), fmt(now + ttl)
-- The status event, `{"status":"running","attempt":<n>,"worker":<owner>}`, around <n>.
local running = '{"status":"running","attempt":'
local worker = ',"worker":' .. cjson.encode(owner) .. '}'
-- The fields a claim writes; the counters (4, 6, 14, 16) are set per job, started_at is
-- written on a first claim only, the request flags only when one was set.
local w = { 'status', 'running', 'lease_epoch', 0, 'attempt', 0, 'lease_owner', owner,
  'lease_expires_at', expires, 'updated_at', at, 'ver', 0, 'event_seq', 0, 'started_at', at }
for p = 0, 2 do
  local left = limit - #claimed
  if left <= 0 then break end
  local ready = base .. ':ready:' .. p
  local ids = redis.call('ZRANGEBYSCORE', ready, '-inf', at, 'LIMIT', 0, left)
  if #ids > 0 then
    zrem_all(ready, ids)
    zrem_all(base .. ':status:queued', ids)
    for _, id in ipairs(ids) do
      local key = jobkey(id)
      local h = redis.call('HGETALL', key)
      -- Absent counters are 0 (new jobs store only what differs from the default).
      local epoch, attempt, ver, seq, started, requested, list = 0, 0, 0, 0, false, false, false
      for k = 1, #h, 2 do
        local f = h[k]
        if f == 'lease_epoch' then epoch = tonumber(h[k + 1])
        elseif f == 'attempt' then attempt = tonumber(h[k + 1])
        elseif f == 'ver' then ver = tonumber(h[k + 1])
        elseif f == 'event_seq' then seq = tonumber(h[k + 1])
        elseif f == 'started_at' then started = true
        elseif f == 'events' then list = h[k + 1] == 'list'
        elseif (f == 'pause_requested' or f == 'cancel_requested') and h[k + 1] ~= '0' then requested = true
        end
      end
      -- A hash gone (never the case for a queued job) is dropped from the indexes.
      if #h > 0 then
        epoch, attempt, ver, seq = epoch + 1, attempt + 1, ver + 1, seq + 1
        attempt, seq = int(attempt), int(seq)
        w[4], w[6], w[14], w[16] = int(epoch), attempt, int(ver), seq
        local nw = 16
        if not started then nw = 18 end
        redis.call('HSET', key, unpack(w, 1, nw))
        local n = #h
        for k = 1, nw do h[n + k] = w[k] end
        if requested then
          redis.call('HSET', key, 'pause_requested', '0', 'cancel_requested', '0')
          h[n + nw + 1], h[n + nw + 2], h[n + nw + 3], h[n + nw + 4] = 'pause_requested', '0', 'cancel_requested', '0'
        end
        put_event(id, list, seq, 'status', running .. attempt .. worker)
        claimed[#claimed + 1] = h
        leased[#leased + 1] = id
      end
    end
  end
end
zadd_all(base .. ':status:running', '0', leased)
zadd_all(base .. ':leases', expires, leased)
announce(echan)
return claimed
