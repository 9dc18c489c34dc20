-- Give a payment that must have a live charge job and has none its job back, counting the
-- repair on the record (field r). Re-checked here, atomically: a payment that moved or got
-- its job meanwhile is left alone.
-- KEYS: payment, the queue's job keys (4)
-- ARGV: payment id, job payload, now_ms, max repairs
-- Returns {'repaired', repairs} | {'exhausted', repairs} (no job pushed: too many already) |
--         {'healthy', 0} | {'gone', 0}.
local status = redis.call('HGET', KEYS[1], 's')
if not status then return {'gone', 0} end
if status ~= 'pending' and status ~= 'processing' and status ~= 'paused' then
  return {'healthy', 0}
end
local q = fq_queue(2)
if fq_state(q, ARGV[1]) then return {'healthy', 0} end
local repairs = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if repairs >= tonumber(ARGV[4]) then return {'exhausted', repairs} end
redis.call('HSET', KEYS[1], 'r', repairs + 1)
local now = tonumber(ARGV[3])
fq_push(q, ARGV[1], now, now, ARGV[2])
return {'repaired', repairs + 1}
