-- Documents (a payment's record, an event): bytes these scripts never look into (their
-- encoding is `codec.rs`'s), kept in the document's hash as pieces of at most FD_PIECE bytes:
-- k (their count) and d1…dk. So kept, a small hash keeps Redis's compact listpack encoding
-- (every value at most `hash-max-listpack-value`, 64 by default); one long value would turn it
-- into a hash table, several hundred bytes more. Earlier versions kept the JSON whole in d,
-- which reads as well.
local FD_PIECE = 64
-- The fields one HMGET asks for: enough pieces for most documents.
local FD_FIRST = 4
local FD_READ = {'k', 'd', 't', 'p', 'd1', 'd2', 'd3', 'd4'}

-- How many pieces hold `doc`.
local function fd_count(doc)
  return math.ceil(#doc / FD_PIECE)
end

-- Appends the fields that hold `doc` to `fields` (HSET's field, value pairs); returns them.
local function fd_fields(doc, fields)
  local n = fd_count(doc)
  for i = 1, n do
    fields[#fields + 1] = 'd' .. i
    fields[#fields + 1] = string.sub(doc, (i - 1) * FD_PIECE + 1, i * FD_PIECE)
  end
  fields[#fields + 1] = 'k'
  fields[#fields + 1] = n
  return fields
end

-- The fields that a document of `old` pieces (0: none, or written whole in d) leaves behind
-- when one of `new` pieces replaces it, appended to `stale`.
local function fd_stale(old, new, stale)
  if old == 0 then stale[#stale + 1] = 'd' end
  for i = new + 1, old do stale[#stale + 1] = 'd' .. i end
  return stale
end

-- The document of hash `key` (nil when it has none), and the hash's fields t and p (nil when
-- absent).
local function fd_read(key)
  local f = redis.call('HMGET', key, unpack(FD_READ))
  local doc = f[2]
  if not doc and f[1] then
    local n = tonumber(f[1])
    local pieces = {}
    for i = 1, math.min(n, FD_FIRST) do pieces[i] = f[4 + i] end
    if n > FD_FIRST then
      local names = {}
      for i = FD_FIRST + 1, n do names[#names + 1] = 'd' .. i end
      for _, piece in ipairs(redis.call('HMGET', key, unpack(names))) do
        pieces[#pieces + 1] = piece
      end
    end
    doc = table.concat(pieces)
  end
  return doc or nil, f[3] or nil, f[4] or nil
end
