-- Push a batch of jobs; each is new (1) or a duplicate of a live job with the same id (0).
-- KEYS: stream, ids, delayed, delayed_data
-- ARGV: now_ms, then (job_id, due_ms, payload) per job
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '0', 'MKSTREAM')
end
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local id, due, payload = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if redis.call('HSETNX', KEYS[2], id, 1) == 1 then
    if due > now then
      redis.call('ZADD', KEYS[3], due, id)
      redis.call('HSET', KEYS[4], id, payload)
    else
      redis.call('XADD', KEYS[1], '*', 'id', id, 'p', payload)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
