-- Move at most ARGV[2] due delayed jobs to the stream; return {moved, next_due_ms or -1}.
-- Bounded per call so that a million jobs due at once drain in many short calls.
-- KEYS: stream, ids, delayed, delayed_data
-- ARGV: now_ms, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '0', 'MKSTREAM')
  end
  for _, id in ipairs(due) do
    local payload = redis.call('HGET', KEYS[4], id)
    if payload then
      redis.call('XADD', KEYS[1], '*', 'id', id, 'p', payload)
    end
  end
  redis.call('ZREM', KEYS[3], unpack(due))
  redis.call('HDEL', KEYS[4], unpack(due))
end
local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
return {#due, head[2] or '-1'}
