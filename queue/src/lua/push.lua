-- Push a batch of jobs; each is new (1) or a duplicate of a live job with the same id (0).
-- KEYS: stream, ids, delayed, delayed_data
-- ARGV: now_ms, then (job_id, due_ms, payload) per job
local q = fq_queue(1)
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  out[#out + 1] = fq_push(q, ARGV[i], tonumber(ARGV[i + 1]), now, ARGV[i + 2])
end
return out
