-- set_fenced: KEYS[1] is a lease (see lease.lua), KEYS[2] the key to write (same hash
-- tag). ARGV[1] is the writer's fencing token (decimal), ARGV[2] the value, ARGV[3] its
-- TTL in ms ('' for none).
--
-- Writes only while the lease is held (live) under exactly that token: a holder that was
-- replaced, or whose holding expired, writes nothing. The check and the write are one
-- script run, so no lease step can come between them.
-- Replies 1 when written, 0 when refused.
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local sep = string.find(current, ':', 1, true)
if not sep or string.sub(current, 1, sep - 1) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
return 1
