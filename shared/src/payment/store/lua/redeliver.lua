-- Sends an event again: pushes a dispatch job for it (a fresh job id, so it runs even while
-- the event's first dispatch is still live). Its deliveries keep their usual ids, so a
-- delivery still being retried is not doubled.
-- KEYS: the event's key (ARGV[5] .. ARGV[6]), the webhook queue's job keys (4)
-- ARGV: tenant, job id, job payload, now_ms, event key prefix, event id, payment key prefix
-- Returns 'queued', or 'missing' when the event is not the tenant's.
local _, tenant = fe_find(ARGV[5], ARGV[6], ARGV[7])
if tenant ~= ARGV[1] then return 'missing' end
local now = tonumber(ARGV[4])
fq_push(fq_queue(2), ARGV[2], now, now, ARGV[3])
return 'queued'
