-- Documents (a payment's record, an event): bytes these scripts never look into, kept in the
-- document's hash in one of two formats, which the writer chooses (its `mode`, from `[redis]
-- storage_format`) and every reader reads:
--   'compact'  the document as `codec.rs` encodes it, in pieces of at most FD_PIECE bytes:
--              k (their count) and d1…dk. So kept, a small hash keeps Redis's compact listpack
--              encoding (every value at most `hash-max-listpack-value`, 64 by default); one
--              long value would turn it into a hash table, several hundred bytes more.
--   'json'     the JSON whole in d, as versions before the compact format wrote and read it.
local FD_PIECE = 64
-- The fields one HMGET asks for: enough pieces for most documents. Made on first use: every
-- call of a script runs this file, and a table made here would cost each one.
local FD_FIRST = 4
local FD_READ = nil

-- How many pieces hold `s`.
local function fd_count(s)
  return math.ceil(#s / FD_PIECE)
end

-- Appends to `fields` (HSET's field, value pairs) the pieces of `s`, named `name`1…, and
-- their count, named `count`; returns them.
local function fd_pieces(s, name, count, fields)
  local n = fd_count(s)
  for i = 1, n do
    fields[#fields + 1] = name .. i
    fields[#fields + 1] = string.sub(s, (i - 1) * FD_PIECE + 1, i * FD_PIECE)
  end
  fields[#fields + 1] = count
  fields[#fields + 1] = n
  return fields
end

-- Appends to `pieces` the pieces named `name``from`…`name``to` of hash `key`, in order (none
-- when `to` < `from`); returns them.
local function fd_get_pieces(key, name, from, to, pieces)
  if to < from then return pieces end
  local names = {}
  for i = from, to do names[#names + 1] = name .. i end
  for _, piece in ipairs(redis.call('HMGET', key, unpack(names))) do
    pieces[#pieces + 1] = piece
  end
  return pieces
end

-- Appends to `stale` the pieces named `name`1… that `new` pieces leave of `old`.
local function fd_stale_pieces(name, new, old, stale)
  for i = new + 1, old do stale[#stale + 1] = name .. i end
  return stale
end

-- Appends the fields that hold `doc` in `mode` to `fields`; returns them.
local function fd_fields(mode, doc, fields)
  if mode == 'json' then
    fields[#fields + 1] = 'd'
    fields[#fields + 1] = doc
    return fields
  end
  return fd_pieces(doc, 'd', 'k', fields)
end

-- Appends to `stale` what the document `doc`, written in `mode`, leaves behind of the one it
-- replaces (`old`: that one's piece count; 0 when it was whole in d).
local function fd_stale(mode, doc, old, stale)
  if mode == 'json' then
    if old > 0 then stale[#stale + 1] = 'k' end
    return fd_stale_pieces('d', 0, old, stale)
  end
  if old == 0 then stale[#stale + 1] = 'd' end
  return fd_stale_pieces('d', fd_count(doc), old, stale)
end

-- The document of hash `key` (nil when it has none), and the hash's fields t and p (nil when
-- absent).
local function fd_read(key)
  FD_READ = FD_READ or {'k', 'd', 't', 'p', 'd1', 'd2', 'd3', 'd4'}
  local f = redis.call('HMGET', key, unpack(FD_READ))
  local doc = f[2]
  if not doc and f[1] then
    local n = tonumber(f[1])
    local pieces = {}
    for i = 1, math.min(n, FD_FIRST) do pieces[i] = f[4 + i] end
    doc = table.concat(fd_get_pieces(key, 'd', FD_FIRST + 1, n, pieces))
  end
  return doc or nil, f[3] or nil, f[4] or nil
end
