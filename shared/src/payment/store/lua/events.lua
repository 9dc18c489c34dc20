-- The payment store's events: the one definition of how an event is kept in Redis. The scripts
-- that write a payment (create, transition) and those that read or forget its events start
-- with this file (after documents.lua, fe_kinds(), FE_EVENT_PREFIX and FE_PAYMENT_PREFIX (the
-- id prefixes), and the queue's jobs.lua where they push jobs).
--
--   <events>:<id>                  hash: the event's document (documents.lua) and t (tenant);
--                                  in 'compact', none for a payment's `created` event while
--                                  the payment has not changed (or, as a development build
--                                  kept it, p: the payment's key, and t)
--   <payment>                      its timeline: the ids and type codes of its events, oldest
--                                  first (`<id>:<code>,…`, a code indexing fe_kinds() from 0), in
--                                  pieces ek (count), e1…; l: set while its `created` event is
--                                  kept in it. Both 'compact' only: in 'json' the record's JSON
--                                  has the timeline, and every event has its own key
--   <event index>:<tenant>:ty:<t>  sorted set: the tenant's event ids of type t by creation
--                                  time (ms); a listing of every type merges them
--   <event index>:<tenant>         the same for every type, while `[redis]
--                                  unfiltered_indexes` is on: versions before this one list
--                                  from it
--   <endpoints>:<tenant>           hash: the tenant's webhook endpoints (see endpoints.rs);
--                                  while it exists, each event gets a dispatch job
--
-- A payment's `created` event is kept in the payment: while the payment's record has not
-- changed, the event is made from it (by the reader, not here), and its id is the payment's
-- under the event prefix (`EventId::created_of`), which leads a reader to the payment. Before
-- the record first changes, the transition writes the event's document in full, as made from
-- the record it replaces. Most payments pending for months never change, and a copy was a
-- third of their memory.

-- Reads the event at `key`: its document and tenant (nil, nil when there is no such event;
-- nil and the tenant when a created event's payment is gone), and whether the document is the
-- payment's record, from which the reader makes the created event.
local function fe_read(key)
  local doc, tenant, payment = fd_read(key)
  if payment then
    local record = fd_read(payment)
    return record, tenant, true
  end
  return doc, tenant, false
end

-- How a reader hands over a document fe_read or fe_find gave (`derived`: whether it is the
-- payment's record that a `created` event is made from): 'p' for that, else 'd'.
local function fe_form(derived)
  if derived then return 'p' end
  return 'd'
end

-- fe_read for event `id`, its key under `events` (the event key prefix): an event with no key
-- of its own is looked for as the `created` event kept in the payment its id names (key under
-- `payments`, the payment key prefix).
local function fe_find(events, id, payments)
  local doc, tenant, derived = fe_read(events .. id)
  if doc or tenant then return doc, tenant, derived end
  local payment = payments .. FE_PAYMENT_PREFIX .. string.sub(id, #FE_EVENT_PREFIX + 1)
  local f = redis.call('HMGET', payment, 'l', 'e1')
  if not f[1] or not f[2] then return nil, nil, false end
  -- Its first event, the created one (code 0), must be this one (the timeline's first piece
  -- holds its first entry whole: an entry is shorter than a piece).
  local first = id .. ':0'
  local next_char = string.sub(f[2], #first + 1, #first + 1)
  if string.sub(f[2], 1, #first) ~= first or (next_char ~= '' and next_char ~= ',') then
    return nil, nil, false
  end
  local record, owner = fd_read(payment)
  return record, owner, true
end

-- Whether a write adds to the unfiltered indexes (ARGV[first] starting the events' arguments,
-- as fe_write takes them).
local function fe_unfiltered(first)
  return ARGV[first + 3] == '1'
end

-- Writes the events passed from ARGV[first]: the event key prefix, the event index prefix, the
-- endpoints prefix, '1' when the tenant's index of all events is written too (else ''), a
-- count, then id, type, created_ms, document and dispatch job payload for each. An event with
-- an empty document is kept in its payment (the `created` event of a new payment, whose
-- record is already written): it gets no key of its own.
-- `webhooks` is the webhook queue (fq_queue), which gets each event's dispatch job when the
-- tenant has endpoints; `mode`, the documents' format. Returns the index of the first ARGV
-- after them.
local function fe_write(mode, tenant, first, webhooks)
  local events, index, endpoints = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local count = tonumber(ARGV[first + 4])
  local after = first + 5 + count * 5
  if count == 0 then return after end
  local dispatch = redis.call('EXISTS', endpoints .. tenant) == 1
  local tenant_index = index .. ':' .. tenant
  for i = 0, count - 1 do
    local at = first + 5 + i * 5
    local id, kind, doc = ARGV[at], ARGV[at + 1], ARGV[at + 3]
    -- Events of one transition share a millisecond: a fraction keeps them in order.
    local created = tonumber(ARGV[at + 2]) + i / 1000
    if doc ~= '' then
      redis.call('HSET', events .. id, unpack(fd_fields(mode, doc, {'t', tenant})))
    end
    redis.call('ZADD', tenant_index .. ':ty:' .. kind, created, id)
    if fe_unfiltered(first) then redis.call('ZADD', tenant_index, created, id) end
    if dispatch then fq_push(webhooks, id, 0, 0, ARGV[at + 4]) end
  end
  return after
end

-- Writes the `created` event `id` in full (`doc`, of `tenant`) if the payment keeps it (`lazy`,
-- its field l): called before the record changes. Adds l to `stale` when it did.
local function fe_materialize(mode, events, id, doc, tenant, lazy, stale)
  if not lazy then return end
  if doc == '' then error('the payment keeps its created event, and no document was given') end
  local key = events .. id
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(fd_fields(mode, doc, {'t', tenant})))
  stale[#stale + 1] = 'l'
end

-- Gives the payment's events (ARGV[first]: a count, then their ids) an expiry: a backstop
-- should nothing reap them.
local function fe_expire(events, first, ttl)
  for i = 1, tonumber(ARGV[first]) do
    redis.call('EXPIRE', events .. ARGV[first + i], ttl)
  end
end

-- Appends to `fields` the timeline `timeline` of a payment written in `mode`, and to `stale`
-- what it leaves of the timeline before (`old`: that one's piece count, 0 for none).
local function fe_timeline(mode, timeline, old, fields, stale)
  if mode == 'json' then
    if old > 0 then stale[#stale + 1] = 'ek' end
    fd_stale_pieces('e', 0, old, stale)
    return
  end
  fd_pieces(timeline, 'e', 'ek', fields)
  fd_stale_pieces('e', fd_count(timeline), old, stale)
end

-- Calls f(id, type) for each event of the payment, oldest first (type nil for a code this
-- version does not know).
local function fe_each(payment, f)
  local fields = redis.call('HMGET', payment, 'ek', 'd', 'e')
  local timeline = fields[3]
  if fields[1] then
    timeline = table.concat(fd_get_pieces(payment, 'e', 1, tonumber(fields[1]), {}))
  end
  if timeline then
    -- (Whole in e: as a development build kept it before the pieces.)
    local kinds = fe_kinds()
    for id, code in string.gmatch(timeline, '([^,:]+):(%d+)') do
      f(id, kinds[tonumber(code) + 1])
    end
  elseif fields[2] then
    -- Written as JSON: the record has the timeline.
    for _, e in ipairs(cjson.decode(fields[2]).events or {}) do f(e.id, e.type) end
  end
end

-- Forgets the payment's events and their index entries.
local function fe_forget(payment, tenant, events, index)
  local tenant_index = index .. ':' .. tenant
  fe_each(payment, function(id, kind)
    redis.call('DEL', events .. id)
    redis.call('ZREM', tenant_index, id)
    if kind then redis.call('ZREM', tenant_index .. ':ty:' .. kind, id) end
  end)
end
