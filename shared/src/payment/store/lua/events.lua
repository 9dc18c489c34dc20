-- The payment store's events: the one definition of how an event is kept in Redis. The scripts
-- that write a payment (create, transition) and those that read or forget its events start
-- with this file (after the queue's jobs.lua where they push jobs).
--
--   <events>:<id>                  hash: d (the event's JSON), t (tenant); or, lazy: h1…hn
--                                  and z (the JSON before and after the payment's snapshot, the
--                                  first in n pieces), p (the payment's key), t
--   <payment>                      field l: the id of its lazy event, while it has one
--   <event index>:<tenant>         sorted set: the tenant's event ids by creation time (ms)
--   <event index>:<tenant>:ty:<t>  the same, per event type
--   <endpoints>:<tenant>           hash: the tenant's webhook endpoints (see endpoints.rs);
--                                  while it exists, each event gets a dispatch job
-- A payment's events are those of its record's timeline (`events`: id and type of each).
--
-- Lazy events. A payment's `created` event is written lazy: it keeps no copy of the payment
-- while the payment's record has not changed, for its snapshot is then the record without
-- the timeline (the record is the snapshot with `"events":[…]` added as its last member; in
-- JSON a `,"` can only be structure, never inside a string). Before the record first changes,
-- fe_materialize writes the event's JSON in full, byte for byte what fe_read gave until then.
-- Most payments pending for months never change, and the copy was a third of their memory.
-- The JSON before the snapshot is kept in pieces of FE_PIECE bytes, so that the hash keeps
-- Redis's compact encoding (every value at most `hash-max-listpack-value`, 64 by default).
local FE_PIECE = 64

-- The payment snapshot a record holds: the record without its last member, the timeline.
local function fe_snapshot(record)
  local at, from = nil, 1
  while true do
    local found = string.find(record, ',"events":[', from, true)
    if not found then break end
    at, from = found, found + 1
  end
  if not at then return record end
  return string.sub(record, 1, at - 1) .. '}'
end

-- The names of a lazy event's `n` pieces of JSON before the snapshot.
local function fe_pieces(n)
  local names = {}
  for i = 1, n do names[i] = 'h' .. i end
  return names
end

-- The JSON and tenant of the event at `key`, whether written in full or lazy (nil, nil when
-- there is no such event; nil and the tenant when a lazy event's payment is gone).
local function fe_read(key)
  local f = redis.call('HMGET', key, 'd', 't', 'n', 'z', 'p')
  if f[1] or not f[3] then return f[1] or nil, f[2] or nil end
  local record = redis.call('HGET', f[5], 'd')
  if not record then return nil, f[2] end
  local head = table.concat(redis.call('HMGET', key, unpack(fe_pieces(tonumber(f[3])))))
  return head .. fe_snapshot(record) .. f[4], f[2]
end

-- Writes the lazy event of the payment at key `payment` in full, if it has one: called before
-- its record changes.
local function fe_materialize(payment, events)
  local lazy = redis.call('HGET', payment, 'l')
  if not lazy then return end
  local key = events .. lazy
  local json, tenant = fe_read(key)
  if json then
    -- The event as written in full: its JSON and tenant, and nothing of the lazy form.
    redis.call('DEL', key)
    redis.call('HSET', key, 'd', json, 't', tenant)
  end
  redis.call('HDEL', payment, 'l')
end

-- Writes the events passed from ARGV[first]: the event key prefix, the event index prefix, the
-- endpoints prefix, a count, then id, type, created_ms, json, tail and dispatch job payload for
-- each. A tail other than '' makes the event lazy: json and tail are then its JSON before and
-- after the snapshot of `payment` (the payment's key), whose record is already written.
-- `webhooks` is the webhook queue (fq_queue), which gets each event's dispatch job when the
-- tenant has endpoints. Returns the index of the first ARGV after them.
local function fe_write(tenant, first, webhooks, payment)
  local events, index, endpoints = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local count = tonumber(ARGV[first + 3])
  local after = first + 4 + count * 6
  if count == 0 then return after end
  local dispatch = redis.call('EXISTS', endpoints .. tenant) == 1
  local tenant_index = index .. ':' .. tenant
  for i = 0, count - 1 do
    local at = first + 4 + i * 6
    local id, kind = ARGV[at], ARGV[at + 1]
    -- Events of one transition share a millisecond: a fraction keeps them in order.
    local created = tonumber(ARGV[at + 2]) + i / 1000
    if ARGV[at + 4] ~= '' then
      local head, fields, n = ARGV[at + 3], {'z', ARGV[at + 4], 'p', payment, 't', tenant}, 0
      for from = 1, #head, FE_PIECE do
        n = n + 1
        fields[#fields + 1] = 'h' .. n
        fields[#fields + 1] = string.sub(head, from, from + FE_PIECE - 1)
      end
      fields[#fields + 1] = 'n'
      fields[#fields + 1] = n
      redis.call('HSET', events .. id, unpack(fields))
      redis.call('HSET', payment, 'l', id)
    else
      redis.call('HSET', events .. id, 'd', ARGV[at + 3], 't', tenant)
    end
    redis.call('ZADD', tenant_index, created, id)
    redis.call('ZADD', tenant_index .. ':ty:' .. kind, created, id)
    if dispatch then fq_push(webhooks, id, 0, 0, ARGV[at + 5]) end
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
