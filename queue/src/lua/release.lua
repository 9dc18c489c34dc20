-- Give back leased jobs that were never started (shutdown, prefetch): they go to the end of
-- the stream as new entries, ready for any worker at once, keeping their count of lost
-- leases. Only entries this consumer still holds are released. Returns how many.
-- KEYS: stream, ids, delayed, delayed_data
-- ARGV: consumer, then (entry_id, job_id, payload, lost) per job
local q = fq_queue(1)
local released = 0
for i = 2, #ARGV, 4 do
  local mine = redis.call('XPENDING', q.stream, 'workers', ARGV[i], ARGV[i], 1, ARGV[1])
  if #mine > 0 then
    redis.call('XACK', q.stream, 'workers', ARGV[i])
    redis.call('XDEL', q.stream, ARGV[i])
    fq_append(q, ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]))
    released = released + 1
  end
end
return released
