-- cache_remove_tag / cache_remove_namespace: removes the entries listed in the member
-- set KEYS[6] (a tag's or a namespace's), at most ARGV[2] of them per call so that no
-- call blocks the server for long; the caller repeats while `more` is 1.
-- Replies {removed live entries, more, used bytes, entries}.
local set = KEYS[6]
local now = now_ms()
purge_expired(now)

local removed, delta = 0, 0
for _, key in ipairs(redis.call('SRANDMEMBER', set, tonumber(ARGV[2]))) do
  local score = redis.call('ZSCORE', INDEX, key)
  if score then
    local size, live = remove_entry(key, score, now)
    delta = delta - size
    if live then
      removed = removed + 1
    end
  end
  -- Also drops members whose entry is already gone, so every call makes progress.
  leave(set, key)
end
add_used(delta)

local more = 0
if redis.call('SCARD', set) > 0 then
  more = 1
end
return {removed, more, used_bytes(), entries()}
