-- Compare-and-set a payment record: applies only if its version is still ARGV[1]; moves the
-- payment between its status indexes and, when it finishes, from the live set to the reaper's;
-- writes the events the transition recorded.
-- KEYS: payment, the queue's job keys (4), live, expiring, the webhook queue's job keys (4)
-- ARGV: expected version, new record (a document), new status, payment id, created_ms,
--       reap_at_ms (final statuses; 0 otherwise), backstop ttl secs, job action
--       ('none' | 'unschedule' | 'now'), job payload, index prefix, the documents' format
--       ('compact' | 'json', see documents.lua), the payment's timeline (see events.lua), the
--       id of its `created` event and that event's document ('' unless the expected version
--       is the first: see fe_materialize), then the events from ARGV[15] (see fe_write), then
--       the ids of all the payment's events (see fe_expire)
-- 'unschedule' drops a waiting delayed job; 'now' makes the job due now (see fq_run_now).
-- Returns the new version, or false on conflict.
local fields = redis.call('HMGET', KEYS[1], 'v', 's', 't', 'c', 'k', 'l', 'ek', 'e')
local version = fields[1]
if version ~= ARGV[1] then return false end
local id, status, mode = ARGV[4], ARGV[3], ARGV[11]
local old, tenant, customer = fields[2], fields[3], fields[4]
local next_version = tonumber(version) + 1
local stale = {}
fe_materialize(mode, ARGV[15], ARGV[13], ARGV[14], tenant, fields[6], stale)
local record = fd_fields(mode, ARGV[2], {'s', status, 'v', next_version})
fd_stale(mode, ARGV[2], tonumber(fields[5] or '0'), stale)
fe_timeline(mode, ARGV[12], tonumber(fields[7] or '0'), record, stale)
-- A timeline kept whole in e (by a development build before the pieces) goes too.
if fields[8] then stale[#stale + 1] = 'e' end
redis.call('HSET', KEYS[1], unpack(record))
if #stale > 0 then redis.call('HDEL', KEYS[1], unpack(stale)) end
local all_events = fe_write(mode, tenant, 15, fq_queue(8))
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
  fe_expire(ARGV[15], all_events, ARGV[7])
end
local q = fq_queue(2)
if ARGV[8] == 'unschedule' then
  fq_unschedule(q, id)
elseif ARGV[8] == 'now' then
  fq_run_now(q, id, ARGV[9])
end
return next_version
