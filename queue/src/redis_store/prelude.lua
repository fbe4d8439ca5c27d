-- Shared by every drover script. KEYS[1] is the base key of one queue, `<prefix>:{q:<queue>}`:
-- every key a script touches starts with it, so a script stays in one Redis Cluster slot.
-- All time comes from the server's clock.
local base = KEYS[1]
local function fmt(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now = now_ms()
-- '@now' and '@now+<ms>' in values are resolved against the server clock.
local function resolve(v)
  if string.sub(v, 1, 4) == '@now' then
    return fmt(now + (tonumber(string.sub(v, 5)) or 0))
  end
  return v
end
local function jobkey(id) return base .. ':job:' .. id end
-- Appends an event to the job's stream with the next per-job seq, and announces it.
local function add_event(id, kind, data, chan)
  local seq = redis.call('HINCRBY', jobkey(id), 'event_seq', 1)
  redis.call('XADD', base .. ':events:' .. id, '0-' .. seq, 'kind', kind, 'data', data, 'at', fmt(now))
  redis.call('PUBLISH', chan, id .. ':' .. seq)
  return seq
end
local function fenced(id, epoch)
  local key = jobkey(id)
  return redis.call('HGET', key, 'lease_epoch') ~= epoch or redis.call('HGET', key, 'status') ~= 'running'
end
