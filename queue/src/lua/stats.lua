-- Depth per state and the id of the oldest ready entry, in O(log n):
-- {stream_len, leased, delayed, dead, oldest_ready_entry_id or '', now_ms}
-- KEYS: stream, ids, delayed, delayed_data, dead
local len = redis.call('XLEN', KEYS[1])
local leased, last = 0, '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == 'workers' then
      leased = info['pending']
      last = info['last-delivered-id']
    end
  end
end
local oldest = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
local oldest_id = ''
if #oldest > 0 then oldest_id = oldest[1][1] end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {len, leased, redis.call('ZCARD', KEYS[3]), redis.call('XLEN', KEYS[5]), oldest_id, now_ms}
