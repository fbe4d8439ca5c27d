-- A conditional update of one job. ARGV: id, condition ('ver' | 'fence' | 'none'), its value,
-- field count, field/value pairs ('@nil' deletes; '@now[+ms]' is server time), index op
-- count, (zadd|zrem, key suffix, score, member) ops, event kind ('' for none), event data,
-- events channel, publish count, channel/message pairs, and optionally a gate count with
-- (gate key, gate JSON, gate event data) triples: each gate is stored in `gates:<id>` and
-- logged as a `gate` event. Answers { 'ok', seq } (and, for
-- 'ver', the hash's field/value pairs as written), 'missing', 'conflict' or 'fenced'.
local id, cond, expected = ARGV[1], ARGV[2], ARGV[3]
local key = jobkey(id)
if redis.call('EXISTS', key) == 0 then return { 'missing' } end
if cond == 'ver' and redis.call('HGET', key, 'ver') ~= expected then return { 'conflict' } end
if cond == 'fence' and fenced(id, expected) then return { 'fenced' } end
local i = 4
local nf = tonumber(ARGV[i]); i = i + 1
for _ = 1, nf do
  local f, v = ARGV[i], ARGV[i + 1]; i = i + 2
  if v == '@nil' then redis.call('HDEL', key, f) else redis.call('HSET', key, f, resolve(v)) end
end
redis.call('HINCRBY', key, 'ver', 1)
local nops = tonumber(ARGV[i]); i = i + 1
for _ = 1, nops do
  local op, suffix, score, member = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]; i = i + 4
  if op == 'zadd' then redis.call('ZADD', base .. ':' .. suffix, resolve(score), member)
  else redis.call('ZREM', base .. ':' .. suffix, member) end
end
local kind, data, echan = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
local seq = 0
if kind ~= '' then seq = add_event(id, kind, data, echan) end
local np = tonumber(ARGV[i]); i = i + 1
for _ = 1, np do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1]); i = i + 2
end
local ng = tonumber(ARGV[i]) or 0; i = i + 1
for _ = 1, ng do
  redis.call('HSET', base .. ':gates:' .. id, ARGV[i], ARGV[i + 1])
  local gseq = add_event(id, 'gate', ARGV[i + 2], echan)
  if seq == 0 then seq = gseq end
  i = i + 3
end
-- A transition (cond 'ver') gets the job as written, read in this script: a read after it
-- could already see the next writer's change.
if cond == 'ver' then
  local reply = { 'ok', tostring(seq) }
  for _, v in ipairs(redis.call('HGETALL', key)) do reply[#reply + 1] = v end
  return reply
end
return { 'ok', tostring(seq) }
