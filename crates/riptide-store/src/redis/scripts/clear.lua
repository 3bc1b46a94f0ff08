-- cache_clear: removes every cache entry of one scope, at most ARGV[2] per call so that
-- no call blocks the server for long; the caller repeats while `more` is 1. Once the
-- index is empty, the member sets, hashes and counter go too.
-- Replies {removed live entries, more, used bytes, entries}.
local now = now_ms()

local removed, delta = 0, 0
local page = redis.call('ZRANGE', INDEX, 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for j = 1, #page, 2 do
  local size, live = remove_entry(page[j], page[j + 1], now)
  delta = delta - size
  if live then
    removed = removed + 1
  end
end
add_used(delta)

if entries() > 0 then
  return {removed, 1, used_bytes(), entries()}
end
for _, set in ipairs(redis.call('SMEMBERS', SETS)) do
  redis.call('DEL', set)
end
redis.call('DEL', SETS, SIZES, TAGS, USED)
return {removed, 0, 0, 0}
