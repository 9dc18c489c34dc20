-- A page of one payment's events, newest first, after a cursor, optionally of one type.
-- KEYS: payment
-- ARGV: tenant, event key prefix, limit, cursor event id ('' for the first page), type ('' for
--       any), payment key prefix (see fe_find)
-- Returns {'missing'} when the payment is not the tenant's, {'cursor'} when the cursor is not
-- one of its events, else {'ok', has_more (0|1), then id, form and document of each event}
-- (form: see fe_form).
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return {'missing'} end
local ids, kinds, n = {}, {}, 0
fe_each(KEYS[1], function(id, kind)
  -- kind may be nil (a type this version does not know): count, so the two stay aligned.
  n = n + 1
  ids[n] = id
  kinds[n] = kind
end)
local i = #ids
if ARGV[4] ~= '' then
  i = nil
  for j = #ids, 1, -1 do
    if ids[j] == ARGV[4] then
      i = j - 1
      break
    end
  end
  if not i then return {'cursor'} end
end
local limit = tonumber(ARGV[3])
local out = {}
while i >= 1 and #out <= limit do
  if ARGV[5] == '' or kinds[i] == ARGV[5] then
    local event, _, derived = fe_find(ARGV[2], ids[i], ARGV[6])
    if event then out[#out + 1] = {ids[i], fe_form(derived), event} end
  end
  i = i - 1
end
local has_more = 0
if #out > limit then
  has_more = 1
  out[#out] = nil
end
local reply = {'ok', tostring(has_more)}
for _, entry in ipairs(out) do
  reply[#reply + 1] = entry[1]
  reply[#reply + 1] = entry[2]
  reply[#reply + 1] = entry[3]
end
return reply
