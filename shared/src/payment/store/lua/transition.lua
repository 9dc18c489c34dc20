-- Compare-and-set a payment record: applies only if its version is still ARGV[1]; moves the
-- payment between its status indexes and, when it finishes, from the live set to the reaper's;
-- writes the events the transition recorded.
-- KEYS: payment, the queue's job keys (4), live, expiring, the webhook queue's job keys (4)
-- ARGV: expected version, new record (a document), new status, payment id, created_ms,
--       reap_at_ms (final statuses; 0 otherwise), backstop ttl secs, job action
--       ('none' | 'unschedule' | 'now'), job payload, index prefix, the payment's events
--       (field e), the id of its `created` event and that event's document ('' unless the
--       expected version is the first: see fe_materialize), then the events from ARGV[14]
--       (see fe_write), then the ids of all the payment's events (see fe_expire)
-- 'unschedule' drops a waiting delayed job; 'now' makes the job due now (see fq_run_now).
-- Returns the new version, or false on conflict.
local fields = redis.call('HMGET', KEYS[1], 'v', 's', 't', 'c', 'k', 'l')
local version = fields[1]
if version ~= ARGV[1] then return false end
local id, status = ARGV[4], ARGV[3]
local old, tenant, customer = fields[2], fields[3], fields[4]
local next_version = tonumber(version) + 1
local stale = {}
fe_materialize(ARGV[14], ARGV[12], ARGV[13], tenant, fields[6], stale)
redis.call('HSET', KEYS[1], unpack(fd_fields(ARGV[2], {'s', status, 'v', next_version, 'e', ARGV[11]})))
fd_stale(tonumber(fields[5] or '0'), fd_count(ARGV[2]), stale)
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
local all_events = fe_write(tenant, 14, fq_queue(8), KEYS[1])
if old ~= status then
  local tenant_index = ARGV[10] .. ':' .. tenant
  local customer_index = tenant_index .. ':cus:' .. customer
  redis.call('ZREM', tenant_index .. ':st:' .. old, id)
  redis.call('ZREM', customer_index .. ':st:' .. old, id)
  redis.call('ZADD', tenant_index .. ':st:' .. status, ARGV[5], id)
  redis.call('ZADD', customer_index .. ':st:' .. status, ARGV[5], id)
end
if tonumber(ARGV[6]) > 0 then
  redis.call('ZREM', KEYS[6], id)
  redis.call('ZADD', KEYS[7], ARGV[6], id)
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  fe_expire(ARGV[14], all_events, ARGV[7])
end
local q = fq_queue(2)
if ARGV[8] == 'unschedule' then
  fq_unschedule(q, id)
elseif ARGV[8] == 'now' then
  fq_run_now(q, id, ARGV[9])
end
return next_version
