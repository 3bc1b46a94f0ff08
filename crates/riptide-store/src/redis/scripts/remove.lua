-- cache_remove: removes the entries KEYS[6..] of one scope with accounting.
-- A key that is not in the scope's index is not a cache entry of this scope: untouched.
-- Replies {removed live entries, used bytes, entries}.
local now = now_ms()
purge_expired(now)

local removed, delta = 0, 0
for i = 6, #KEYS do
  local key = KEYS[i]
  local score = redis.call('ZSCORE', INDEX, key)
  if score then
    local size, live = remove_entry(key, score, now)
    delta = delta - size
    if live then
      removed = removed + 1
    end
  end
end
add_used(delta)

return {removed, used_bytes(), entries()}
