-- Writes a tenant's webhook endpoint: a new one while the tenant has fewer than the limit, or
-- a compare-and-set replacement of one still stored as it was read (an update never brings
-- back a deleted endpoint, nor undoes a change made since it read, such as a rotation).
-- KEYS: the tenant's endpoints hash
-- ARGV: 'create' | 'replace', endpoint id, endpoint json, limit, the json as read (replace)
-- Returns 'ok', 'full', 'missing' or 'moved'.
if ARGV[1] == 'create' then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
else
  local current = redis.call('HGET', KEYS[1], ARGV[2])
  if not current then return 'missing' end
  if current ~= ARGV[5] then return 'moved' end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 'ok'
