-- The payment store's events: the one definition of how an event is kept in Redis. The scripts
-- that write a payment (create, transition) and the one that forgets it (reap) start with this
-- file.
--
--   <events>:<id>                  hash: d (the event's JSON), t (tenant)
--   <event index>:<tenant>         sorted set: the tenant's event ids by creation time (ms)
--   <event index>:<tenant>:ty:<t>  the same, per event type
--   the payment's field e          the payment's events, one 'id type' line each, oldest first

-- Writes the events passed from ARGV[first]: a count, then id, type, created_ms, json for each.
-- `events` is the prefix of event keys, `index` that of event indexes.
local function fe_write(payment, tenant, events, index, first)
  local count = tonumber(ARGV[first])
  if count == 0 then return end
  local listed = redis.call('HGET', payment, 'e') or ''
  local tenant_index = index .. ':' .. tenant
  for i = 0, count - 1 do
    local at = first + 1 + i * 4
    local id, kind, created = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    redis.call('HSET', events .. id, 'd', ARGV[at + 3], 't', tenant)
    redis.call('ZADD', tenant_index, created, id)
    redis.call('ZADD', tenant_index .. ':ty:' .. kind, created, id)
    listed = listed .. id .. ' ' .. kind .. '\n'
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
