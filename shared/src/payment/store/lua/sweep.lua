-- One batch of the sweeper's walk over the live (non-final) payments: which ones that must
-- have a live charge job (pending, processing, paused) have none, and how many wait for an
-- operator. Members whose record is gone or final are dropped from the live set.
-- KEYS: live, the queue's job keys (4)
-- ARGV: cursor (the last member seen; '' from the start), batch size, payment key prefix
-- Returns {next cursor ('' when the walk is over), scanned, requiring attention,
--          id, status, id, status … of payments without a job}.
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local ids = redis.call('ZRANGE', KEYS[1], from, '+', 'BYLEX', 'LIMIT', 0, tonumber(ARGV[2]))
local q = fq_queue(2)
local attention = 0
local out = {}
for _, id in ipairs(ids) do
  local status = redis.call('HGET', ARGV[3] .. id, 's')
  if status == 'pending' or status == 'processing' or status == 'paused' then
    if not fq_state(q, id) then
      out[#out + 1] = id
      out[#out + 1] = status
    end
  elseif status == 'requires_attention' then
    attention = attention + 1
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local next_cursor = ''
if #ids == tonumber(ARGV[2]) then next_cursor = ids[#ids] end
return {next_cursor, tostring(#ids), tostring(attention), unpack(out)}
