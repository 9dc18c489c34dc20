-- Record the outcomes of a batch of leased jobs. An entry that is no longer pending (another
-- worker already finished it after this one's lease ran out) is skipped: first finisher wins.
-- KEYS: stream, ids, delayed, delayed_data, dead
-- ARGV: now_ms, dead_letters_max, then (entry_id, job_id, kind, arg, payload) per job, where
--   kind 'c' = complete; 'r' = retry at arg (ms); 'x' = dead letter with reason arg
local now = tonumber(ARGV[1])
local entries, finished = {}, {}
for i = 3, #ARGV, 5 do
  local eid, id, kind, arg, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if redis.call('XACK', KEYS[1], 'workers', eid) == 1 then
    entries[#entries + 1] = eid
    if kind == 'c' then
      finished[#finished + 1] = id
    elseif kind == 'r' then
      if tonumber(arg) <= now then
        redis.call('XADD', KEYS[1], '*', 'id', id, 'p', payload)
      else
        redis.call('ZADD', KEYS[3], arg, id)
        redis.call('HSET', KEYS[4], id, payload)
      end
    else
      redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[2], '*', 'id', id, 'p', payload, 'reason', arg, 'at', ARGV[1])
      finished[#finished + 1] = id
    end
  end
end
if #entries > 0 then redis.call('XDEL', KEYS[1], unpack(entries)) end
if #finished > 0 then redis.call('HDEL', KEYS[2], unpack(finished)) end
return #entries
