-- ARGV: id, epoch, key, result JSON. The first record of a key wins; returns the stored one.
local id, epoch, k, result = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', jobkey(id)) == 0 then return { 'missing' } end
if fenced(id, epoch) then return { 'fenced' } end
if redis.call('HSETNX', base .. ':effects:' .. id, k, result) == 1 then
  redis.call('HSET', base .. ':effmeta:' .. id, k, epoch .. ':' .. fmt(now))
end
return { 'ok', redis.call('HGET', base .. ':effects:' .. id, k) }
