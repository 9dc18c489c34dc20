-- Compare-and-set a payment record: applies only if its version is still ARGV[1].
-- KEYS: payment, queue stream, queue ids, queue delayed, queue delayed_data
-- ARGV: expected version, new record json, new status, payment id, expire secs (0: none),
--       job action ('none' | 'unschedule' | 'now'), job payload, now_ms
-- 'unschedule' drops a waiting delayed job; 'now' makes the job due now (a delayed one is
-- moved to now; with none live, a new one is pushed; a live one is marked to run again).
-- Returns 1 when applied, 0 on conflict.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 's', ARGV[3], 'v', tonumber(ARGV[1]) + 1)
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
local id = ARGV[4]
if ARGV[6] == 'unschedule' then
  if redis.call('ZREM', KEYS[4], id) == 1 then
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[3], id)
  end
elseif ARGV[6] == 'now' then
  if redis.call('ZSCORE', KEYS[4], id) then
    redis.call('ZADD', KEYS[4], ARGV[8], id)
  elseif redis.call('HSETNX', KEYS[3], id, 1) == 1 then
    if redis.call('EXISTS', KEYS[2]) == 0 then
      redis.call('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')
    end
    redis.call('XADD', KEYS[2], '*', 'id', id, 'p', ARGV[7])
  else
    -- The job is live: waiting, running, or finished but not yet acknowledged, in which case
    -- it never saw this change. flint-queue runs a job marked 'again' once more when it is
    -- acknowledged.
    redis.call('HSET', KEYS[3], id, 'again')
  end
end
return 1
