-- ARGV: id, epoch, step, state, compressed ('1'|'0'), keep, events channel, then item outputs
-- written with it, three ARGV each: member (`<step>\n<index, 20 digits>`), visit, output.
-- Returns the seq.
local id, epoch, step, state, compressed, keep, echan =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if redis.call('EXISTS', jobkey(id)) == 0 then return { 'missing' } end
if fenced(id, epoch) then return { 'fenced' } end
local seq = redis.call('HINCRBY', jobkey(id), 'cp_seq', 1)
redis.call('HSET', base .. ':cp:' .. id, seq, state)
redis.call('HSET', base .. ':cpmeta:' .. id, seq, step .. '\n' .. compressed .. '\n' .. fmt(now))
for _, old in ipairs(redis.call('HKEYS', base .. ':cpmeta:' .. id)) do
  if tonumber(old) <= seq - keep then
    redis.call('HDEL', base .. ':cp:' .. id, old)
    redis.call('HDEL', base .. ':cpmeta:' .. id, old)
  end
end
for i = 8, #ARGV - 2, 3 do
  redis.call('ZADD', base .. ':itemidx:' .. id, 0, ARGV[i])
  redis.call('HSET', base .. ':items:' .. id, ARGV[i], ARGV[i + 1] .. '\n' .. ARGV[i + 2])
end
redis.call('HSET', jobkey(id), 'updated_at', fmt(now))
add_event(id, 'checkpoint', cjson.encode({ seq = seq, step = step, size = #state }), echan)
return { 'ok', tostring(seq) }
