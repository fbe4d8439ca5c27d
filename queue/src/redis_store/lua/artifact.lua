-- ARGV: id, epoch, name, content type, data, event data JSON, events channel.
local id, epoch, name, ctype, data, event, echan = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', jobkey(id)) == 0 then return { 'missing' } end
if fenced(id, epoch) then return { 'fenced' } end
redis.call('HSET', base .. ':art:' .. id, name, data)
redis.call('HSET', base .. ':artmeta:' .. id, name, ctype .. '\n' .. fmt(now))
local list = base .. ':artlist:' .. id
if not redis.call('LPOS', list, name) then redis.call('RPUSH', list, name) end
redis.call('HSET', jobkey(id), 'artifacts', cjson.encode(redis.call('LRANGE', list, 0, -1)), 'updated_at', fmt(now))
add_event(id, 'artifact', event, echan)
return { 'ok', fmt(now) }
