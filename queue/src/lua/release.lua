-- Give back leased jobs that were never started (shutdown, prefetch): they go to the end of
-- the stream as new entries, ready for any worker at once. Only entries this consumer still
-- holds are released. Returns how many.
-- KEYS: stream
-- ARGV: consumer, then (entry_id, job_id, payload) per job
local released = 0
for i = 2, #ARGV, 3 do
  local mine = redis.call('XPENDING', KEYS[1], 'workers', ARGV[i], ARGV[i], 1, ARGV[1])
  if #mine > 0 then
    redis.call('XACK', KEYS[1], 'workers', ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[1], '*', 'id', ARGV[i + 1], 'p', ARGV[i + 2])
    released = released + 1
  end
end
return released
