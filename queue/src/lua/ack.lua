-- Record the outcomes of a batch of jobs leased to this worker. An entry it no longer holds
-- (its lease ran out and reclaim.lua moved the job to a new entry, deleting the old one) is
-- skipped: the worker that holds the job now reports its outcome. Returns how many outcomes
-- were applied.
-- KEYS: stream, ids, delayed, delayed_data, dead
-- ARGV: now_ms, dead_letters_max, then (entry_id, job_id, kind, arg, payload) per job, where
--   kind 'c' = complete; 'r' = retry at arg (ms); 'x' = dead letter, reason arg. The payload
--   is the job's own: a job marked 'again' runs once more with it whatever it reported.
--
-- The fence is the entry id itself: since a reclaimed job always gets a new entry, an entry
-- still pending is held by the worker that read it, and one XACK over the batch both
-- acknowledges and counts what this worker still holds. Only when the count falls short are
-- the entries looked at one by one (an entry that still exists after the XACK was this
-- worker's). Then one HMGET reads every job's 'again' mark, and one XDEL and one HDEL finish
-- the batch: about four commands per batch instead of per job.
local q = fq_queue(1)
local now = tonumber(ARGV[1])
-- One outcome per entry (the first, should an entry come twice).
local entries, first = {}, {}
for i = 3, #ARGV, 5 do
  if not first[ARGV[i]] then
    first[ARGV[i]] = i
    entries[#entries + 1] = ARGV[i]
  end
end
if #entries == 0 then return 0 end
local acked = redis.call('XACK', q.stream, 'workers', unpack(entries))
local held = {}
for k = 1, #entries do
  held[k] = acked == #entries or #redis.call('XRANGE', q.stream, entries[k], entries[k]) > 0
end
local mine, ids = {}, {}
for k = 1, #entries do
  if held[k] then
    mine[#mine + 1] = entries[k]
    ids[#ids + 1] = ARGV[first[entries[k]] + 1]
  end
end
if #mine == 0 then return 0 end
local marks = redis.call('HMGET', q.ids, unpack(ids))
-- A job id is live in at most one entry, so it appears here at most once; should it not, the
-- job stays live (never finished after being re-added in this batch).
local finished, readded = {}, {}
local m = 0
for k = 1, #entries do
  if held[k] then
    m = m + 1
    local i = first[entries[k]]
    local id, kind, arg, payload = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if kind ~= 'x' and marks[m] == 'again' then
      -- Asked to run now while it was live (it may have finished without seeing why).
      redis.call('HSET', q.ids, id, 1)
      fq_append(q, id, payload)
      readded[id] = true
    elseif kind == 'c' then
      finished[#finished + 1] = id
    elseif kind == 'r' then
      if tonumber(arg) <= now then
        fq_append(q, id, payload)
      else
        redis.call('ZADD', q.delayed, arg, id)
        redis.call('HSET', q.delayed_data, id, payload)
      end
      readded[id] = true
    else
      redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], '*', 'id', id, 'p', payload, 'reason', arg, 'at', ARGV[1])
      finished[#finished + 1] = id
    end
  end
end
redis.call('XDEL', q.stream, unpack(mine))
local gone = {}
for _, id in ipairs(finished) do
  if not readded[id] then gone[#gone + 1] = id end
end
if #gone > 0 then redis.call('HDEL', q.ids, unpack(gone)) end
return #mine
