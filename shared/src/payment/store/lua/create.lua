-- Create a payment atomically: the tenant's idempotency claim, the record, its indexes, its
-- `created` event and its charge job are written together or not at all.
-- KEYS: idem, payment, the queue's job keys (4), live, the webhook queue's job keys (4)
-- ARGV: fingerprint, payment id, record (a document), created_ms, idem ttl secs, due_ms, job
--       payload, now_ms, tenant, customer digest, index prefix (`flint:{q}:idx`), the
--       documents' format ('compact' | 'json', see documents.lua), the payment's timeline
--       (see events.lua), then the events from ARGV[14] (see fe_write), the first of which, the
--       `created` event, has no document when the payment keeps it ('compact')
-- Returns {'created'|'replay'|'reused', payment id}.
local existing = redis.call('GET', KEYS[1])
if existing then
  local sep = string.find(existing, '|', 1, true)
  local id = string.sub(existing, sep + 1)
  if string.sub(existing, 1, sep - 1) ~= ARGV[1] then return {'reused', id} end
  return {'replay', id}
end
local id, created, tenant, customer, mode = ARGV[2], ARGV[4], ARGV[9], ARGV[10], ARGV[12]
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. id, 'EX', ARGV[5])
local record = fd_fields(mode, ARGV[3], {'s', 'pending', 't', tenant, 'c', customer, 'v', 1})
fe_timeline(mode, ARGV[13], 0, record, {})
if mode ~= 'json' then
  record[#record + 1] = 'l'
  record[#record + 1] = 1
end
redis.call('HSET', KEYS[2], unpack(record))
local tenant_index = ARGV[11] .. ':' .. tenant
local customer_index = tenant_index .. ':cus:' .. customer
redis.call('ZADD', tenant_index .. ':st:pending', created, id)
redis.call('ZADD', customer_index .. ':st:pending', created, id)
if fe_unfiltered(14) then
  -- The indexes of all the tenant's (the customer's) payments, which versions before this one
  -- list from; this one lists the union of the per-status indexes.
  redis.call('ZADD', tenant_index, created, id)
  redis.call('ZADD', customer_index, created, id)
end
redis.call('ZADD', KEYS[7], 0, id)
fe_write(mode, tenant, 14, fq_queue(8))
fq_push(fq_queue(3), id, tonumber(ARGV[6]), tonumber(ARGV[8]), ARGV[7])
return {'created', id}
