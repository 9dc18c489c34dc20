-- Move at most ARGV[2] due delayed jobs to the stream; return {moved, next_due_ms or -1}.
-- Bounded per call so that a million jobs due at once drain in many short calls.
-- KEYS: stream, ids, delayed, delayed_data
-- ARGV: now_ms, limit
local q = fq_queue(1)
local due = redis.call('ZRANGEBYSCORE', q.delayed, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  local payloads = redis.call('HMGET', q.delayed_data, unpack(due))
  for k, id in ipairs(due) do
    if payloads[k] then
      fq_append(q, id, payloads[k])
    else
      -- No payload (never written this way by Flint): forget the id rather than keep a job
      -- that looks live but can never run.
      redis.call('HDEL', q.ids, id)
    end
  end
  redis.call('ZREM', q.delayed, unpack(due))
  redis.call('HDEL', q.delayed_data, unpack(due))
end
local head = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
return {#due, head[2] or '-1'}
