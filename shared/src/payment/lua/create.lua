-- Create a payment atomically: the tenant's idempotency claim, the record, its indexes and
-- its charge job are written together or not at all.
-- KEYS: idem, payment, tenant index, customer index, queue stream, queue ids, queue delayed,
--       queue delayed_data
-- ARGV: fingerprint, payment id, record json, created_ms, idem ttl secs, due_ms, job payload,
--       now_ms, tenant
-- Returns {'created'|'replay'|'reused', payment id}.
local existing = redis.call('GET', KEYS[1])
if existing then
  local sep = string.find(existing, '|', 1, true)
  local id = string.sub(existing, sep + 1)
  if string.sub(existing, 1, sep - 1) ~= ARGV[1] then return {'reused', id} end
  return {'replay', id}
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[5])
redis.call('HSET', KEYS[2], 'd', ARGV[3], 's', 'pending', 't', ARGV[9], 'v', 1)
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
-- The charge job, laid out as flint-queue's push.lua lays out a job (its id is the payment id).
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[5], 'workers', '0', 'MKSTREAM')
end
if redis.call('HSETNX', KEYS[6], ARGV[2], 1) == 1 then
  if tonumber(ARGV[6]) > tonumber(ARGV[8]) then
    redis.call('ZADD', KEYS[7], ARGV[6], ARGV[2])
    redis.call('HSET', KEYS[8], ARGV[2], ARGV[7])
  else
    redis.call('XADD', KEYS[5], '*', 'id', ARGV[2], 'p', ARGV[7])
  end
end
return {'created', ARGV[2]}
