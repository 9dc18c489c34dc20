-- Remove consumers that hold nothing and have not read for longer than ARGV[1] ms (processes
-- that exited or crashed after their jobs were reclaimed), so that the group does not grow
-- with every restart. Returns how many were removed.
-- KEYS: stream
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], 'workers')) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', info['name'])
    removed = removed + 1
  end
end
return removed
