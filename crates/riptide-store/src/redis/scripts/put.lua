-- cache_put: writes a batch of entries of one scope with accounting, atomically.
-- KEYS[6..] are the entry keys. ARGV[2] is the budget in bytes ('' for none); then four
-- ARGV per entry: namespace, TTL in ms ('' for none), tags joined by "\n", value.
-- Replies {evicted keys, used bytes, entries}, or the error `OVERBUDGET <needed> <budget>`.
local budget = tonumber(ARGV[2])
local n = #KEYS - 5

-- The last write of a key within one batch wins.
local last = {}
for i = 1, n do
  last[KEYS[5 + i]] = i
end
local needed = 0
for i = 1, n do
  if last[KEYS[5 + i]] == i then
    needed = needed + #ARGV[2 + 4 * i]
  end
end
-- Checked before anything is written: Redis does not roll back a failed script.
if budget and needed > budget then
  return redis.error_reply(string.format('OVERBUDGET %d %d', needed, budget))
end

local now = now_ms()
purge_expired(now)

-- Overwritten entries stop counting; this also takes the batch's keys out of the
-- index, so eviction below can never pick one of them.
local delta = 0
for i = 1, n do
  local key = KEYS[5 + i]
  if last[key] == i and redis.call('ZSCORE', INDEX, key) then
    delta = delta - forget(key)
  end
end

-- Evict soonest-expiring first (no-TTL entries last, ties by key: zset order).
local evicted = {}
if budget then
  local over = used_bytes() + delta + needed - budget
  while over > 0 do
    local page = redis.call('ZRANGE', INDEX, 0, 63, 'WITHSCORES')
    if #page == 0 then
      break
    end
    for j = 1, #page, 2 do
      if over <= 0 then
        break
      end
      local key = page[j]
      local size, live = remove_entry(key, page[j + 1], now)
      delta = delta - size
      over = over - size
      -- An entry already past its expiry is dropped, not reported as evicted.
      if live then
        evicted[#evicted + 1] = key
      end
    end
  end
end

for i = 1, n do
  local key = KEYS[5 + i]
  if last[key] == i then
    local o = 2 + 4 * (i - 1)
    local ns, ttl, tags, value = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
    local score = NO_TTL
    if ttl == '' then
      redis.call('SET', key, value)
    else
      redis.call('SET', key, value, 'PX', ttl)
      score = math.min(now + tonumber(ttl), NO_TTL - 1)
    end
    redis.call('ZADD', INDEX, score, key)
    redis.call('HSET', SIZES, key, #value)
    if tags ~= '' then
      redis.call('HSET', TAGS, key, tags)
      for tag in string.gmatch(tags, '[^\n]+') do
        join(BASE .. ':t:' .. tag, key)
      end
    end
    join(BASE .. ':n:' .. ns, key)
  end
end
add_used(delta + needed)

return {evicted, used_bytes(), entries()}
