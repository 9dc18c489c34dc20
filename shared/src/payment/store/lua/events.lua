-- The payment store's events: the one definition of how an event is kept in Redis. The scripts
-- that write a payment (create, transition) and those that read or forget its events start
-- with this file (after the queue's jobs.lua where they push jobs).
--
--   <events>:<id>                  hash: d (the event's JSON), t (tenant)
--   <event index>:<tenant>         sorted set: the tenant's event ids by creation time (ms)
--   <event index>:<tenant>:ty:<t>  the same, per event type
--   the payment's field e          the payment's events, one 'id type' line each, oldest first
--   <endpoints>:<tenant>           hash: the tenant's webhook endpoints (see endpoints.rs);
--                                  while it exists, each event gets a dispatch job

-- Writes the events passed from ARGV[first]: the event key prefix, the event index prefix, the
-- endpoints prefix, a count, then id, type, created_ms, json and dispatch job payload for each.
-- `webhooks` is the webhook queue (fq_queue), which gets each event's dispatch job when the
-- tenant has endpoints.
local function fe_write(payment, tenant, first, webhooks)
  local events, index, endpoints = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local count = tonumber(ARGV[first + 3])
  if count == 0 then return end
  local dispatch = redis.call('EXISTS', endpoints .. tenant) == 1
  local listed = redis.call('HGET', payment, 'e') or ''
  local tenant_index = index .. ':' .. tenant
  for i = 0, count - 1 do
    local at = first + 4 + i * 5
    local id, kind = ARGV[at], ARGV[at + 1]
    -- Events of one transition share a millisecond: a fraction keeps them in order.
    local created = tonumber(ARGV[at + 2]) + i / 1000
    redis.call('HSET', events .. id, 'd', ARGV[at + 3], 't', tenant)
    redis.call('ZADD', tenant_index, created, id)
    redis.call('ZADD', tenant_index .. ':ty:' .. kind, created, id)
    listed = listed .. id .. ' ' .. kind .. '\n'
    if dispatch then fq_push(webhooks, id, 0, 0, ARGV[at + 4]) end
  end
  redis.call('HSET', payment, 'e', listed)
end

-- Calls f(id, type) for each event of the payment, oldest first.
local function fe_each(payment, f)
  local listed = redis.call('HGET', payment, 'e')
  if not listed then return end
  for id, kind in string.gmatch(listed, '(%S+) (%S+)\n') do f(id, kind) end
end

-- Gives the payment's events the payment's own expiry (a backstop should nothing reap them).
local function fe_expire(payment, events, ttl)
  fe_each(payment, function(id) redis.call('EXPIRE', events .. id, ttl) end)
end

-- Forgets the payment's events and their index entries.
local function fe_forget(payment, tenant, events, index)
  local tenant_index = index .. ':' .. tenant
  fe_each(payment, function(id, kind)
    redis.call('DEL', events .. id)
    redis.call('ZREM', tenant_index, id)
    redis.call('ZREM', tenant_index .. ':ty:' .. kind, id)
  end)
end
