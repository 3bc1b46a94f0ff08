-- counters_add_once: KEYS[1] is the counters hash, KEYS[2] the batch ids already applied
-- (a sorted set: id -> when it may be forgotten, ms on the server's clock; the key itself
-- expires with its last id). ARGV[1] is the batch id, ARGV[2] how long to remember it
-- (ms, at least 1), ARGV[3..] (field, increment) pairs.
-- Replies 1 when the batch was applied now, 0 when it had been applied already.
--
-- Each increment saturates at the i64 bounds, as `i64::saturating_add` does (HINCRBY
-- refuses to overflow; the increment's sign then says which bound the field takes).
-- Any other HINCRBY failure (a field holding a non-integer) puts the fields already
-- incremented back as they were, the id is not remembered, and the error is the reply:
-- a batch is applied completely or not at all.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end

local before, touched = {}, {}
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  if before[field] == nil then
    before[field] = redis.call('HGET', KEYS[1], field)
    touched[#touched + 1] = field
  end
  local by = ARGV[i + 1]
  local reply = redis.pcall('HINCRBY', KEYS[1], field, by)
  if type(reply) == 'table' and reply.err and string.find(reply.err, 'overflow', 1, true) then
    if string.sub(by, 1, 1) == '-' then
      redis.call('HSET', KEYS[1], field, '-9223372036854775808')
    else
      redis.call('HSET', KEYS[1], field, '9223372036854775807')
    end
  elseif type(reply) == 'table' and reply.err then
    for _, f in ipairs(touched) do
      if before[f] then
        redis.call('HSET', KEYS[1], f, before[f])
      else
        redis.call('HDEL', KEYS[1], f)
      end
    end
    return reply
  end
end

redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
