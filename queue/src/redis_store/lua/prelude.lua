-- Shared by every drover script. KEYS[1] is the base key of one queue, `<prefix>:{q:<queue>}`:
-- every key a script touches starts with it, so a script stays in one Redis Cluster slot.
-- All time comes from the server's clock.
local base = KEYS[1]
local function fmt(n) return string.format('%.0f', n) end
-- An integer counter as text. Redis formats a number argument with printf('%.17g') and Lua
-- concatenation with '%.14g', both far slower than '%d'; counters are formatted once.
local function int(n) return string.format('%d', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now = now_ms()
local now_text = fmt(now)
-- '@now' and '@now+<ms>' in values are resolved against the server clock.
local function resolve(v)
  if string.sub(v, 1, 4) == '@now' then
    return fmt(now + (tonumber(string.sub(v, 5)) or 0))
  end
  return v
end
local function jobkey(id) return base .. ':job:' .. id end
-- A job's event log. Jobs whose hash has `events` = 'list' keep it in the list
-- `eventlog:<id>`, event n at index n - 1, each entry `<seq>\n<at ms>\n<data>\n<kind>` (data is
-- compact JSON, so it holds no newline). Jobs stored before keep the stream `events:<id>`
-- (entry id `0-<seq>`): a new stream costs about 4 KiB (Redis preallocates its first node)
-- and several times a list's CPU to create.
-- Appends event `seq` (text) to the job's log (the caller has set the job's `event_seq`);
-- `list` tells the job's layout. With `chan` it is announced at once; batch scripts pass nil
-- and call `announce` at the end.
local announced = {}
local function put_event(id, list, seq, kind, data, chan)
  if list then
    redis.call('RPUSH', base .. ':eventlog:' .. id, seq .. '\n' .. now_text .. '\n' .. data .. '\n' .. kind)
  else
    redis.call('XADD', base .. ':events:' .. id, '0-' .. seq, 'kind', kind, 'data', data, 'at', now_text)
  end
  if chan then
    redis.call('PUBLISH', chan, id .. ':' .. seq)
  else
    announced[#announced + 1] = id .. ':' .. seq
  end
end
-- Appends an event with the job's next seq; see `put_event`.
local function add_event(id, kind, data, chan)
  local key = jobkey(id)
  local seq = int(redis.call('HINCRBY', key, 'event_seq', 1))
  put_event(id, redis.call('HGET', key, 'events') == 'list', seq, kind, data, chan)
  return seq
end
-- Variadic ZADD/ZREM of many members, in chunks that stay under Lua's unpack limit.
local function zadd_pairs(key, pairs)
  for i = 1, #pairs, 1000 do
    redis.call('ZADD', key, unpack(pairs, i, math.min(i + 999, #pairs)))
  end
end
local function zadd_all(key, score, members)
  local pairs = {}
  for _, m in ipairs(members) do
    pairs[#pairs + 1] = score
    pairs[#pairs + 1] = m
  end
  zadd_pairs(key, pairs)
end
local function zrem_all(key, members)
  for i = 1, #members, 1000 do
    redis.call('ZREM', key, unpack(members, i, math.min(i + 999, #members)))
  end
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
