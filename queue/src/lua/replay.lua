-- Put a dead letter back on the queue. Returns 1 when replayed, 2 when a live job with the
-- same id exists (nothing changed), 0 when there is no such dead letter.
-- KEYS: stream, ids, delayed, delayed_data, dead
-- ARGV: dead letter entry id
local found = redis.call('XRANGE', KEYS[5], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields = found[1][2]
local id, payload
for i = 1, #fields, 2 do
  if fields[i] == 'id' then id = fields[i + 1] elseif fields[i] == 'p' then payload = fields[i + 1] end
end
if redis.call('HSETNX', KEYS[2], id, 1) == 0 then return 2 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '0', 'MKSTREAM')
end
redis.call('XADD', KEYS[1], '*', 'id', id, 'p', payload)
redis.call('XDEL', KEYS[5], ARGV[1])
return 1
