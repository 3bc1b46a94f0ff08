-- counters_get_applied: KEYS[1] is the counters hash, KEYS[2] the batch ids applied to it
-- (the sorted set of counters_add_once.lua: id -> when it may be forgotten, ms on the
-- server's clock). ARGV are batch ids.
-- Replies {HGETALL of KEYS[1], {1 or 0 per id}}: 1 when the id is remembered as applied
-- (counters_add_once would skip it). One script, so the counters and the flags are the
-- state of one moment. Reads only.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local flags = {}
for i = 1, #ARGV do
  local forget_at = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if forget_at and tonumber(forget_at) > now then
    flags[i] = 1
  else
    flags[i] = 0
  end
end
return {redis.call('HGETALL', KEYS[1]), flags}
