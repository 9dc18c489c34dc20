-- Forget finished payments whose retention is over: the record, its events and every index
-- entry, so no key grows with the payments a tenant has ever made. Bounded per call.
-- KEYS: expiring
-- ARGV: now_ms, batch size, payment key prefix, index prefix, event key prefix, event index
--       prefix
-- Returns how many were reaped.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local fields = redis.call('HMGET', key, 't', 'c', 's')
  local tenant, customer, status = fields[1], fields[2], fields[3]
  if tenant then
    local tenant_index = ARGV[4] .. ':' .. tenant
    local customer_index = tenant_index .. ':cus:' .. customer
    redis.call('ZREM', tenant_index, id)
    redis.call('ZREM', tenant_index .. ':st:' .. status, id)
    redis.call('ZREM', customer_index, id)
    redis.call('ZREM', customer_index .. ':st:' .. status, id)
    fe_forget(key, tenant, ARGV[5], ARGV[6])
    redis.call('DEL', key)
  end
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
