-- A page of a tenant's payments (or events) from one index, newest first, after a cursor; one
-- round trip whatever the filter (each filter has its own index, so nothing is scanned and
-- skipped).
-- Entries whose record is gone (expired before the reaper removed them) are dropped from the
-- index as they are met, so every call makes progress.
-- KEYS: index, the tenant's index of all its payments (or events: where a cursor's position
--       is kept)
-- ARGV: tenant, limit, cursor id ('' for the first page), record key prefix
--       (`flint:{q}:pay:` or `flint:{q}:evt:`; payments are read with fe_read, events with
--       fe_find),
--       the cursor's score ('' to look it up in KEYS[2]; given when the cursor lives in
--       another partition, whose pages are merged with this one's), the payment key prefix
--       when listing events ('' for payments: see fe_find)
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
local limit = tonumber(ARGV[2])
local max, cursor = '+inf', ARGV[3]
if cursor ~= '' and ARGV[5] ~= '' then
  max = ARGV[5]
elseif cursor ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], cursor)
  if not score then return {'missing'} end
  max = score
end
local out = {}
local offset, scanned, chunk = 0, 0, limit + 1
-- Bounded: the page, and as many dropped entries again as two pages of 100 would hold.
local budget = limit + 1 + 200
local ended = false
while #out <= limit and not ended and scanned < budget do
  local entries = redis.call('ZRANGE', KEYS[1], max, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, chunk, 'WITHSCORES')
  ended = #entries / 2 < chunk
  offset = offset + #entries / 2
  for i = 1, #entries, 2 do
    local id, score = entries[i], entries[i + 1]
    -- Same millisecond as the cursor: members of one score come in reverse order, so those
    -- not below the cursor's id were on earlier pages.
    if cursor == '' or tonumber(score) < tonumber(max) or before(id, cursor) then
      scanned = scanned + 1
      -- Payments and events alike (a payment's hash has no field p).
      local record, tenant, derived
      if ARGV[6] == '' then
        record, tenant, derived = fe_read(ARGV[4] .. id)
      else
        record, tenant, derived = fe_find(ARGV[4], id, ARGV[6])
      end
      if not record then
        redis.call('ZREM', KEYS[1], id)
        offset = offset - 1
      elseif tenant == ARGV[1] and #out <= limit then
        out[#out + 1] = {id, score, fe_form(derived), record}
      end
    end
  end
end
local has_more = 0
if #out > limit then
  has_more = 1
  out[#out] = nil
elseif not ended then
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
