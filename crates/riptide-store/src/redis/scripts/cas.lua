-- compare_and_swap: KEYS[1] is the record.
-- ARGV[1] is '1' when the record must currently hold ARGV[2], '0' when it must be absent;
-- ARGV[3] is '1' to write ARGV[4] (without TTL), '0' to delete the record.
-- Values are compared byte for byte (Lua strings are binary-safe).
-- Replies 1 when the comparison held and the write (or delete) was done, else 0.
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then
    return 0
  end
elseif current then
  return 0
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
