-- Completes many running jobs of one queue, each under its own fence. ARGV: events channel,
-- then (id, lease epoch, result JSON) triples. Answers one word per job: 'done' (completed
-- now, or by an earlier try under the same epoch) or 'fenced' (not ours; nothing written).
local echan = ARGV[1]
local answers = {}
for i = 2, #ARGV, 3 do
  local id, epoch, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = jobkey(id)
  local status = redis.call('HGET', key, 'status')
  local same_epoch = redis.call('HGET', key, 'lease_epoch') == epoch
  if status == 'running' and same_epoch then
    redis.call('HSET', key, 'status', 'completed', 'result', result, 'updated_at', fmt(now),
      'finished_at', fmt(now))
    redis.call('HDEL', key, 'lease_expires_at')
    redis.call('HINCRBY', key, 'ver', 1)
    redis.call('ZREM', base .. ':leases', id)
    redis.call('ZREM', base .. ':status:running', id)
    redis.call('ZADD', base .. ':status:completed', 0, id)
    redis.call('ZADD', base .. ':finished:completed', now, id)
    local data = cjson.encode({ status = 'completed',
      attempt = tonumber(redis.call('HGET', key, 'attempt')),
      worker = redis.call('HGET', key, 'lease_owner') })
    add_event(id, 'status', data)
    answers[#answers + 1] = 'done'
  elseif status == 'completed' and same_epoch then
    answers[#answers + 1] = 'done'
  else
    answers[#answers + 1] = 'fenced'
  end
end
announce(echan)
return answers
