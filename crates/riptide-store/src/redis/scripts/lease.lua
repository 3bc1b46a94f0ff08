-- lease: KEYS[1] is the lease, KEYS[2] its fencing counter (same hash tag).
-- ARGV[1] is the holder, ARGV[2] the holding's lifetime from now (ms, at least 1),
-- ARGV[3] 'acquire' or 'release'.
--
-- The lease holds '<token>:<holder>' and expires with the holding (PX, so on the
-- server's clock). The counter is INCRed for every new holding and never expires, so a
-- token is never handed out twice, even after the lease key expired or was released.
--   acquire, free:            token = INCR counter; SET lease PX ttl; held.
--   acquire, same holder:     PEXPIRE lease ttl; same token; held.
--   acquire, other holder:    nothing changes; not held.
--   release, same holder:     DEL lease; free.
--   release, otherwise:       nothing changes.
-- Replies {held (1/0), holder or nil, token ('0' when free), ms left (0 when free)}. The
-- token is a string, so it stays exact whatever Lua numbers can hold.
local current = redis.call('GET', KEYS[1])
local token, holder = '0', false
if current then
  local sep = string.find(current, ':', 1, true)
  if not sep or not string.match(string.sub(current, 1, sep - 1), '^%d+$') then
    return redis.error_reply('ERR lease: ' .. KEYS[1] .. ' holds a value that is not a lease')
  end
  token, holder = string.sub(current, 1, sep - 1), string.sub(current, sep + 1)
end
local me, ttl = ARGV[1], ARGV[2]

if ARGV[3] == 'acquire' then
  if not current then
    token = string.format('%.0f', redis.call('INCR', KEYS[2]))
    redis.call('SET', KEYS[1], token .. ':' .. me, 'PX', ttl)
    return {1, me, token, tonumber(ttl)}
  end
  if holder == me then
    redis.call('PEXPIRE', KEYS[1], ttl)
    return {1, me, token, tonumber(ttl)}
  end
elseif current and holder == me then
  redis.call('DEL', KEYS[1])
  return {0, false, '0', 0}
end

if not current then
  return {0, false, '0', 0}
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  -- A lease always has a TTL; -1 (none) would mean someone else wrote it.
  left = 0
end
return {0, holder, token, left}
