-- The payment store's events: the one definition of how an event is kept in Redis. The scripts
-- that write a payment (create, transition) and those that read or forget its events start
-- with this file (after the queue's jobs.lua where they push jobs).
--
--   <events>:<id>                  hash: d (the event's JSON), t (tenant)
--   <event index>:<tenant>         sorted set: the tenant's event ids by creation time (ms)
--   <event index>:<tenant>:ty:<t>  the same, per event type
--   <endpoints>:<tenant>           hash: the tenant's webhook endpoints (see endpoints.rs);
--                                  while it exists, each event gets a dispatch job
-- A payment's events are those of its record's timeline (`events`: id and type of each).

-- Writes the events passed from ARGV[first]: the event key prefix, the event index prefix, the
-- endpoints prefix, a count, then id, type, created_ms, json and dispatch job payload for each.
-- `webhooks` is the webhook queue (fq_queue), which gets each event's dispatch job when the
-- tenant has endpoints. Returns the index of the first ARGV after them.
local function fe_write(tenant, first, webhooks)
  local events, index, endpoints = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local count = tonumber(ARGV[first + 3])
  local after = first + 4 + count * 5
  if count == 0 then return after end
  local dispatch = redis.call('EXISTS', endpoints .. tenant) == 1
  local tenant_index = index .. ':' .. tenant
  for i = 0, count - 1 do
    local at = first + 4 + i * 5
    local id, kind = ARGV[at], ARGV[at + 1]
    -- Events of one transition share a millisecond: a fraction keeps them in order.
    local created = tonumber(ARGV[at + 2]) + i / 1000
    redis.call('HSET', events .. id, 'd', ARGV[at + 3], 't', tenant)
    redis.call('ZADD', tenant_index, created, id)
    redis.call('ZADD', tenant_index .. ':ty:' .. kind, created, id)
    if dispatch then fq_push(webhooks, id, 0, 0, ARGV[at + 4]) end
  end
  return after
end

-- Gives the payment's events (ARGV[first]: a count, then their ids) an expiry: a backstop
-- should nothing reap them.
local function fe_expire(events, first, ttl)
  for i = 1, tonumber(ARGV[first]) do
    redis.call('EXPIRE', events .. ARGV[first + i], ttl)
  end
end

-- Calls f(id, type) for each event of the payment (its record's timeline), oldest first.
local function fe_each(payment, f)
  local record = redis.call('HGET', payment, 'd')
  if not record then return end
  for _, e in ipairs(cjson.decode(record).events or {}) do f(e.id, e.type) end
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
