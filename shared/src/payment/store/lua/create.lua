-- Create a payment atomically: the tenant's idempotency claim, the record, its indexes, its
-- `created` event and its charge job are written together or not at all.
-- KEYS: idem, payment, the queue's job keys (4), live, the webhook queue's job keys (4)
-- ARGV: fingerprint, payment id, record (a document), created_ms, idem ttl secs, due_ms, job
--       payload, now_ms, tenant, customer digest, index prefix (`flint:{q}:idx`), the
--       payment's events (field e, see events.lua), then the events from ARGV[13] (see
--       fe_write), the first of which, the `created` event, is kept as p
-- Returns {'created'|'replay'|'reused', payment id}.
local existing = redis.call('GET', KEYS[1])
if existing then
  local sep = string.find(existing, '|', 1, true)
  local id = string.sub(existing, sep + 1)
  if string.sub(existing, 1, sep - 1) ~= ARGV[1] then return {'reused', id} end
  return {'replay', id}
end
local id, created, tenant, customer = ARGV[2], ARGV[4], ARGV[9], ARGV[10]
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. id, 'EX', ARGV[5])
redis.call('HSET', KEYS[2], unpack(fd_fields(ARGV[3], {
  's', 'pending', 't', tenant, 'c', customer, 'v', 1, 'e', ARGV[12], 'l', 1
})))
local tenant_index = ARGV[11] .. ':' .. tenant
local customer_index = tenant_index .. ':cus:' .. customer
redis.call('ZADD', tenant_index, created, id)
redis.call('ZADD', tenant_index .. ':st:pending', created, id)
redis.call('ZADD', customer_index, created, id)
redis.call('ZADD', customer_index .. ':st:pending', created, id)
redis.call('ZADD', KEYS[7], 0, id)
fe_write(tenant, 13, fq_queue(8), KEYS[2])
fq_push(fq_queue(3), id, tonumber(ARGV[6]), tonumber(ARGV[8]), ARGV[7])
return {'created', id}
