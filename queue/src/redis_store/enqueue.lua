-- ARGV: max_queue_size (-1: none), jobs channel, events channel, queue, n, then per job:
-- id, idempotency key ('' for none), fingerprint, priority rank, run_at ('' for now),
-- field count, field/value pairs. All or nothing.
local max = tonumber(ARGV[1])
local jchan, echan, queue, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local jobs, i = {}, 6
for j = 1, n do
  local job = { id = ARGV[i], key = ARGV[i + 1], fp = ARGV[i + 2], prio = ARGV[i + 3], run_at = ARGV[i + 4] }
  local nf = tonumber(ARGV[i + 5])
  i = i + 6
  job.fields = {}
  for k = 1, nf * 2 do job.fields[k] = ARGV[i + k - 1] end
  i = i + nf * 2
  jobs[j] = job
end
local out, fresh, seen = {}, 0, {}
for j, job in ipairs(jobs) do
  if job.key ~= '' then
    local existing, efp = nil, nil
    if seen[job.key] then
      existing, efp = seen[job.key].id, seen[job.key].fp
    else
      existing = redis.call('GET', base .. ':idem:' .. job.key)
      if existing then efp = redis.call('HGET', jobkey(existing), 'fingerprint') end
    end
    if existing then
      if efp ~= job.fp then return { 'conflict', job.key, existing } end
      job.skip = true
      out[j] = { 'existing', existing }
    else
      seen[job.key] = job
    end
  end
  if not job.skip then
    fresh = fresh + 1
    out[j] = { 'created', job.id }
  end
end
if max >= 0 then
  local held = redis.call('ZCARD', base .. ':status:queued') + redis.call('ZCARD', base .. ':status:running')
    + redis.call('ZCARD', base .. ':status:paused')
  if held + fresh > max then return { 'full', tostring(max) } end
end
-- One HSET and one XADD per job; the index moves are one variadic call per index.
local at = fmt(now)
local ready, fresh_ids = {}, {}
for _, job in ipairs(jobs) do
  if not job.skip then
    local run_at = job.run_at
    if run_at == '' then run_at = at end
    local f = job.fields
    for _, v in ipairs({ 'run_at', run_at, 'status', 'queued', 'attempt', '0', 'lease_epoch', '0',
      'event_seq', '1', 'cp_seq', '0', 'ver', '1', 'created_at', at, 'updated_at', at,
      'fingerprint', job.fp, 'pause_requested', '0', 'cancel_requested', '0',
      'artifacts', '[]' }) do
      f[#f + 1] = v
    end
    redis.call('HSET', jobkey(job.id), unpack(f))
    ready[job.prio] = ready[job.prio] or {}
    local r = ready[job.prio]
    r[#r + 1] = run_at
    r[#r + 1] = job.id
    fresh_ids[#fresh_ids + 1] = job.id
    if job.key ~= '' then redis.call('SET', base .. ':idem:' .. job.key, job.id) end
    put_event(job.id, 1, 'status', '{"attempt":0,"status":"queued"}')
  end
end
for prio, r in pairs(ready) do zadd_pairs(base .. ':ready:' .. prio, r) end
zadd_all(base .. ':status:queued', 0, fresh_ids)
zadd_all(base .. ':all', 0, fresh_ids)
announce(echan)
if fresh > 0 then redis.call('PUBLISH', jchan, queue) end
local flat = { 'ok', at }
for _, o in ipairs(out) do
  flat[#flat + 1] = o[1]
  flat[#flat + 1] = o[2]
end
return flat
