-- Put a dead letter back on the queue. Returns 1 when replayed, 2 when a live job with the
-- same id exists (nothing changed), 0 when there is no such dead letter.
-- KEYS: stream, ids, delayed, delayed_data, dead
-- ARGV: dead letter entry id, now_ms
local q = fq_queue(1)
local found = redis.call('XRANGE', KEYS[5], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields = found[1][2]
local id, payload
for i = 1, #fields, 2 do
  if fields[i] == 'id' then id = fields[i + 1] elseif fields[i] == 'p' then payload = fields[i + 1] end
end
if fq_push(q, id, 0, tonumber(ARGV[2]), payload) == 0 then return 2 end
redis.call('XDEL', KEYS[5], ARGV[1])
return 1
