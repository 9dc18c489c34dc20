-- Renew the leases this consumer still holds (an entry reclaimed by another worker is left
-- alone). Returns how many were renewed.
-- KEYS: stream
-- ARGV: consumer, then entry ids
local renewed = 0
for i = 2, #ARGV do
  local mine = redis.call('XPENDING', KEYS[1], 'workers', ARGV[i], ARGV[i], 1, ARGV[1])
  if #mine > 0 then
    redis.call('XCLAIM', KEYS[1], 'workers', ARGV[1], 0, ARGV[i], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
