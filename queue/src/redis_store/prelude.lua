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
-- Appends an event to the job's stream with the next per-job seq. With `chan` it is
-- announced at once; batch scripts pass nil and call `announce` once at the end.
local announced = {}
local function add_event(id, kind, data, chan)
  local seq = redis.call('HINCRBY', jobkey(id), 'event_seq', 1)
  redis.call('XADD', base .. ':events:' .. id, '0-' .. seq, 'kind', kind, 'data', data, 'at', fmt(now))
  if chan then
    redis.call('PUBLISH', chan, id .. ':' .. seq)
  else
    announced[#announced + 1] = id .. ':' .. seq
  end
  return seq
end
-- Announces the events appended without `chan`: `id:seq[,id:seq…]`, 100 jobs a message.
local function announce(chan)
  for i = 1, #announced, 100 do
    redis.call('PUBLISH', chan, table.concat(announced, ',', i, math.min(i + 99, #announced)))
  end
end
local function fenced(id, epoch)
  local key = jobkey(id)
  return redis.call('HGET', key, 'lease_epoch') ~= epoch or redis.call('HGET', key, 'status') ~= 'running'
end
