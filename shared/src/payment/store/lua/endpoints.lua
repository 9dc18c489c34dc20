-- Writes a tenant's webhook endpoint: a new one while the tenant has fewer than the limit, or
-- a replacement of one that still exists (an update never brings back a deleted endpoint).
-- KEYS: the tenant's endpoints hash
-- ARGV: 'create' | 'replace', endpoint id, endpoint json, limit
-- Returns 'ok', 'full' or 'missing'.
if ARGV[1] == 'create' then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
elseif redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return 'missing'
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 'ok'
