-- A page of a tenant's payments (or events) from one or more indexes merged, newest first,
-- after a cursor; one round trip whatever the filter. The listing is the union of its indexes:
-- one for a status (or an event type), every status's (every type's) without one. A record is
-- in one index of a kind at a time, and the merge is one script, so a payment that changes
-- status meanwhile is met once, in its place.
-- Entries whose record is gone (expired before the reaper removed them) are dropped from their
-- index as they are met, so every call makes progress.
-- KEYS: the listing's indexes (ARGV[7] of them), then, when the cursor's score is to be looked
--       up here, the tenant's indexes of the same kind, one per status (per event type), in
--       which it is looked up
-- ARGV: tenant, limit, cursor id ('' for the first page), record key prefix
--       (`flint:{q}:pay:` or `flint:{q}:evt:`; payments are read with fe_read, events with
--       fe_find),
--       the cursor's score ('' to look it up; given when the cursor lives in another
--       partition, whose pages are merged with this one's), the payment key prefix when
--       listing events ('' for payments: see fe_find), how many of KEYS the listing reads
-- Returns {'missing'} when the cursor is not one of the tenant's records, else
-- {'ok', has_more (0|1), then id, score, form (see fe_form) and document for each record}.
-- Whether id `a` sorts before `b` as a sorted set orders members: byte by byte. (Lua's `<` on
-- strings follows the server's collation locale, which need not be byte order.)
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local limit, cursor, sources = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[7])
local max = '+inf'
if cursor ~= '' and ARGV[5] ~= '' then
  max = ARGV[5]
elseif cursor ~= '' then
  local score
  for i = sources + 1, #KEYS do
    score = redis.call('ZSCORE', KEYS[i], cursor)
    if score then break end
  end
  if not score then return {'missing'} end
  max = score
end
local max_score = cursor ~= '' and tonumber(max)
-- Each index is read in chunks, newest first from the cursor's score; `offset` counts what
-- this call has read of it (less what it dropped).
local chunk = limit + 1
local walks = {}
for s = 1, sources do walks[s] = {entries = {}, next = 1, offset = 0, ended = false} end
-- The next entry of index `s` this page has not met ({id, score as read, score}), or nil.
local function head(s)
  local w = walks[s]
  while w.next > #w.entries do
    if w.ended then return nil end
    local read = redis.call('ZRANGE', KEYS[s], max, '-inf', 'BYSCORE', 'REV', 'LIMIT', w.offset, chunk, 'WITHSCORES')
    w.ended = #read / 2 < chunk
    w.offset = w.offset + #read / 2
    w.entries, w.next = {}, 1
    for i = 1, #read, 2 do
      local id, score = read[i], tonumber(read[i + 1])
      -- Same millisecond as the cursor: members of one score come in reverse order, so those
      -- not below the cursor's id were on earlier pages.
      if not max_score or score < max_score or before(id, cursor) then
        w.entries[#w.entries + 1] = {id, read[i + 1], score}
      end
    end
  end
  return w.entries[w.next]
end
local out, seen = {}, {}
-- Bounded: the page, and as many dropped entries again as two pages of 100 would hold.
local scanned, budget = 0, limit + 1 + 200
local exhausted = false
while #out <= limit and scanned < budget do
  -- The newest head: the larger score, then the larger id (a page walks an index backwards).
  local best, first
  for s = 1, sources do
    local h = head(s)
    if h and (not first or h[3] > first[3] or (h[3] == first[3] and before(first[1], h[1]))) then
      best, first = s, h
    end
  end
  if not best then
    exhausted = true
    break
  end
  walks[best].next = walks[best].next + 1
  local id = first[1]
  if not seen[id] then
    seen[id] = true
    scanned = scanned + 1
    -- Payments and events alike (a payment's hash has no field p).
    local record, tenant, derived
    if ARGV[6] == '' then
      record, tenant, derived = fe_read(ARGV[4] .. id)
    else
      record, tenant, derived = fe_find(ARGV[4], id, ARGV[6])
    end
    if not record then
      redis.call('ZREM', KEYS[best], id)
      walks[best].offset = walks[best].offset - 1
    elseif tenant == ARGV[1] then
      out[#out + 1] = {id, first[2], fe_form(derived), record}
    end
  end
end
local has_more = 0
if #out > limit then
  has_more = 1
  out[#out] = nil
elseif not exhausted then
  -- Stopped by the budget: more may follow (the next call continues past what was dropped).
  has_more = 1
end
local reply = {'ok', tostring(has_more)}
for _, entry in ipairs(out) do
  reply[#reply + 1] = entry[1]
  reply[#reply + 1] = entry[2]
  reply[#reply + 1] = entry[3]
  reply[#reply + 1] = entry[4]
end
return reply
