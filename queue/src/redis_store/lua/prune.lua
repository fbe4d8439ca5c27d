-- ARGV: cutoff ms for completed, failed, cancelled; limit. Deletes finished jobs past their
-- retention with everything they own; returns the deleted ids.
local limit = tonumber(ARGV[4])
local deleted = {}
for s, status in ipairs({ 'completed', 'failed', 'cancelled' }) do
  local left = limit - #deleted
  if left <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', base .. ':finished:' .. status, '-inf', ARGV[s], 'LIMIT', 0, left)
  for _, id in ipairs(ids) do
    local idem = redis.call('HGET', jobkey(id), 'idempotency_key')
    if idem and idem ~= '' then redis.call('DEL', base .. ':idem:' .. idem) end
    for _, gate in ipairs(redis.call('HKEYS', base .. ':gates:' .. id)) do
      local member = id .. '/' .. gate
      for _, index in ipairs({ 'gate_status:open', 'gate_status:decided', 'gate_status:timed_out', 'gate_deadlines' }) do
        redis.call('ZREM', base .. ':' .. index, member)
      end
    end
    for _, part in ipairs({ 'gates', 'job', 'events', 'eventlog', 'cp', 'cpmeta', 'items', 'itemidx', 'effects', 'effmeta', 'art', 'artmeta', 'artlist' }) do
      redis.call('DEL', base .. ':' .. part .. ':' .. id)
    end
    redis.call('ZREM', base .. ':finished:' .. status, id)
    redis.call('ZREM', base .. ':status:' .. status, id)
    redis.call('ZREM', base .. ':all', id)
    deleted[#deleted + 1] = id
  end
end
return deleted
