-- flint-queue's job operations: the one definition of how a job is laid out in Redis. Every
-- queue script starts with this file, and so does every script of a queue's user that moves
-- jobs (the payment scripts): they touch job keys only through these functions.
--
-- A queue is a table of its four job keys, built by fq_queue(i) from KEYS[i .. i+3] in the
-- order stream, ids, delayed, delayed_data (flint_queue::keys::Keys::job_keys in Rust):
--   stream        ready and leased jobs, one entry each: id, p (payload) and, after a lease
--                 ran out, n (how many deliveries in a row lost their lease)
--   ids           job id -> 1 for every live job (ready, leased or delayed): push dedup;
--                 'again' when the job must run once more, at once, when acknowledged
--   delayed       job id -> due time (ms)
--   delayed_data  job id -> payload of a delayed job

local function fq_queue(first)
  return {stream = KEYS[first], ids = KEYS[first + 1], delayed = KEYS[first + 2],
          delayed_data = KEYS[first + 3]}
end

-- The stream and its consumer group, created if Redis lost them; checked once per script run
-- and queue (a script may push to two queues of one slot).
local fq_group_checked = {}
local function fq_ensure_group(q)
  if fq_group_checked[q.stream] then return end
  if redis.call('EXISTS', q.stream) == 0 then
    redis.call('XGROUP', 'CREATE', q.stream, 'workers', '0', 'MKSTREAM')
  end
  fq_group_checked[q.stream] = true
end

-- Appends a ready job (its id already live in `ids`); `lost` counts deliveries in a row whose
-- lease ran out (nil or 0 for none). Returns the new entry's id.
local function fq_append(q, id, payload, lost)
  fq_ensure_group(q)
  if lost and lost > 0 then
    return redis.call('XADD', q.stream, '*', 'id', id, 'p', payload, 'n', lost)
  end
  return redis.call('XADD', q.stream, '*', 'id', id, 'p', payload)
end

-- Pushes a job due at `due` (ms) unless a job with its id is live. Returns 1 if pushed, 0 if
-- a live job has the id.
local function fq_push(q, id, due, now, payload)
  if redis.call('HSETNX', q.ids, id, 1) == 0 then return 0 end
  if due > now then
    redis.call('ZADD', q.delayed, due, id)
    redis.call('HSET', q.delayed_data, id, payload)
  else
    fq_append(q, id, payload)
  end
  return 1
end

-- Makes a job due now: a delayed one moves to the stream at once; with no live job, one is
-- pushed; a live one (ready, or leased and perhaps finishing without having seen why it must
-- run now) is marked to run once more when it is acknowledged.
-- Returns 'moved', 'pushed' or 'marked'.
local function fq_run_now(q, id, payload)
  if redis.call('ZREM', q.delayed, id) == 1 then
    local stored = redis.call('HGET', q.delayed_data, id)
    redis.call('HDEL', q.delayed_data, id)
    fq_append(q, id, stored or payload)
    return 'moved'
  end
  if redis.call('HSETNX', q.ids, id, 1) == 1 then
    fq_append(q, id, payload)
    return 'pushed'
  end
  redis.call('HSET', q.ids, id, 'again')
  return 'marked'
end

-- Drops a waiting delayed job (a ready or leased one runs and finds nothing to do).
-- Returns 1 if one was dropped.
local function fq_unschedule(q, id)
  if redis.call('ZREM', q.delayed, id) == 0 then return 0 end
  redis.call('HDEL', q.delayed_data, id)
  redis.call('HDEL', q.ids, id)
  return 1
end

-- Whether a job with this id is live: 'delayed', 'live' (ready or leased) or false.
local function fq_state(q, id)
  if redis.call('HEXISTS', q.ids, id) == 0 then return false end
  if redis.call('ZSCORE', q.delayed, id) then return 'delayed' end
  return 'live'
end
