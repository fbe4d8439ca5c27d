-- Completes many running jobs of one queue, each under its own fence. ARGV: events channel,
-- then (id, lease epoch, result JSON) triples. Answers one word per job: 'done' (completed
-- now, or by an earlier try under the same epoch) or 'fenced' (not ours; nothing written).
local echan = ARGV[1]
local answers, done = {}, {}
local at = fmt(now)
-- The status event, `{"status":"completed","attempt":<n>,"worker":<owner>}`; the worker
-- part is encoded once per owner.
local workers = {}
for i = 2, #ARGV, 3 do
  local id, epoch, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = jobkey(id)
  local v = redis.call('HMGET', key, 'status', 'lease_epoch', 'attempt', 'lease_owner', 'ver', 'event_seq',
    'events')
  if v[1] == 'running' and v[2] == epoch then
    local seq = int(tonumber(v[6]) + 1)
    redis.call('HSET', key, 'status', 'completed', 'result', result, 'updated_at', at,
      'finished_at', at, 'ver', int(tonumber(v[5]) + 1), 'event_seq', seq)
    redis.call('HDEL', key, 'lease_expires_at')
    local owner, worker = v[4], '}'
    if owner then
      worker = workers[owner]
      if not worker then
        worker = ',"worker":' .. cjson.encode(owner) .. '}'
        workers[owner] = worker
      end
    end
    put_event(id, v[7] == 'list', seq, 'status', '{"status":"completed","attempt":' .. (v[3] or '0') .. worker)
    done[#done + 1] = id
    answers[#answers + 1] = 'done'
  elseif v[1] == 'completed' and v[2] == epoch then
    answers[#answers + 1] = 'done'
  else
    answers[#answers + 1] = 'fenced'
  end
end
zrem_all(base .. ':leases', done)
zrem_all(base .. ':status:running', done)
zadd_all(base .. ':status:completed', '0', done)
zadd_all(base .. ':finished:completed', at, done)
announce(echan)
return answers
