-- ARGV: max_queue_size (-1: none), jobs channel, events channel, queue, n, then per job:
-- id, idempotency key ('' for none), fingerprint ('' without a key), priority rank, run_at
-- ('' for now), field count, field/value pairs. All or nothing. Fields at their default
-- (attempt, lease_epoch and cp_seq 0, no pause or cancel request, no artifacts,
-- updated_at = created_at) are not stored: `job_from_hash` reads them as absent.
local max = tonumber(ARGV[1])
local jchan, echan, queue, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
-- First pass, before anything is written: idempotency keys, then the queue's bound.
local out, fresh, seen, skip = { 'ok', '' }, 0, {}, {}
local i = 6
for j = 1, n do
  local id, key = ARGV[i], ARGV[i + 1]
  local existing = nil
  if key ~= '' then
    local fp, efp = ARGV[i + 2], nil
    local earlier = seen[key]
    if earlier then
      existing, efp = earlier[1], earlier[2]
    else
      existing = redis.call('GET', base .. ':idem:' .. key)
      if existing then efp = redis.call('HGET', jobkey(existing), 'fingerprint') end
    end
    if existing then
      if efp ~= fp then return { 'conflict', key, existing } end
      skip[j] = true
    else
      seen[key] = { id, fp }
    end
  end
  if existing then
    out[#out + 1] = 'existing'
    out[#out + 1] = existing
  else
    fresh = fresh + 1
    out[#out + 1] = 'created'
    out[#out + 1] = id
  end
  i = i + 6 + 2 * tonumber(ARGV[i + 5])
end
if max >= 0 then
  local held = redis.call('ZCARD', base .. ':status:queued') + redis.call('ZCARD', base .. ':status:running')
    + redis.call('ZCARD', base .. ':status:paused')
  if held + fresh > max then return { 'full', tostring(max) } end
end
-- One HSET and one XADD per job; the index moves are one variadic call per index.
local at = fmt(now)
out[2] = at
local ready, fresh_ids = {}, {}
i = 6
for j = 1, n do
  local last = i + 5 + 2 * tonumber(ARGV[i + 5])
  if not skip[j] then
    local id, key, prio, run_at = ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 4]
    if run_at == '' then run_at = at end
    redis.call('HSET', jobkey(id), 'id', id, 'queue', queue, 'status', 'queued', 'run_at', run_at,
      'created_at', at, 'event_seq', '1', 'ver', '1', 'events', 'list', unpack(ARGV, i + 6, last))
    local r = ready[prio]
    if not r then
      r = {}
      ready[prio] = r
    end
    r[#r + 1] = run_at
    r[#r + 1] = id
    fresh_ids[#fresh_ids + 1] = id
    if key ~= '' then redis.call('SET', base .. ':idem:' .. key, id) end
    put_event(id, true, '1', 'status', '{"attempt":0,"status":"queued"}')
  end
  i = last + 1
end
for prio, r in pairs(ready) do zadd_pairs(base .. ':ready:' .. prio, r) end
zadd_all(base .. ':status:queued', '0', fresh_ids)
zadd_all(base .. ':all', '0', fresh_ids)
announce(echan)
if fresh > 0 then redis.call('PUBLISH', jchan, queue) end
return out
