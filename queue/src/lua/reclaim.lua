-- Take over jobs whose lease ran out (their worker died or stalled) by moving each to a new
-- entry at the end of the stream, ready for any worker. The old entry is deleted, so the
-- worker that held it can neither renew nor acknowledge it any more: an entry id is a lease.
-- Each move counts the lost delivery in the entry (field n); a job whose lease ran out more
-- than max_lost times in a row is dead-lettered with the reason instead.
-- KEYS: stream, ids, delayed, delayed_data, dead
-- ARGV: consumer, lease_ms, cursor, count, max_lost, now_ms, dead_letters_max
-- Returns {next cursor ('0-0' once the scan wrapped), moved, dead-lettered}.
local q = fq_queue(1)
local claimed = redis.call('XAUTOCLAIM', q.stream, 'workers', ARGV[1], ARGV[2], ARGV[3],
  'COUNT', ARGV[4])
local moved, dead = 0, 0
local max_lost = tonumber(ARGV[5])
local function take_over(eid, fields)
  redis.call('XACK', q.stream, 'workers', eid)
  redis.call('XDEL', q.stream, eid)
  if not fields then return end
  local job = {}
  for i = 1, #fields, 2 do job[fields[i]] = fields[i + 1] end
  if not (job.id and job.p) then return end
  local lost = (tonumber(job.n) or 0) + 1
  if lost > max_lost then
    redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[7], '*', 'id', job.id, 'p', job.p,
      'reason', 'its lease ran out ' .. lost .. ' times in a row: the job crashes or stalls its worker',
      'at', ARGV[6])
    redis.call('HDEL', q.ids, job.id)
    dead = dead + 1
  else
    fq_append(q, job.id, job.p, lost)
    moved = moved + 1
  end
end
for _, entry in ipairs(claimed[2]) do
  -- (Before Redis 7, a deleted entry comes back as nil.)
  if entry then take_over(entry[1], entry[2]) end
end
return {claimed[1], moved, dead}
