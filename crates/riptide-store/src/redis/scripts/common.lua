--!df flags=allow-undeclared-keys
-- Helpers shared by every cache script; `scripts.rs` prepends this file to each one.
-- (The first line is a plain comment for Redis; it lets DragonflyDB run the scripts.)
--
-- KEYS[1..5] are always the scope's index (zset key -> expires_at ms), sizes (hash
-- key -> bytes), entry tags (hash key -> tags joined by "\n"), used-bytes counter and
-- the set of member-set names. ARGV[1] is the scope's base key. Tag and namespace
-- member sets are named from the base (`<base>:t:<tag>`, `<base>:n:<ns>`): they carry
-- the scope's hash tag, so they live on the same Cluster slot as the declared keys.
local INDEX, SIZES, TAGS, USED, SETS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local BASE = ARGV[1]
-- Index score of an entry without TTL: sorts after every real expiry.
local NO_TTL = 9007199254740991
-- Most expired entries one call drops, so no call blocks the server for long.
local PURGE_LIMIT = 1000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function used_bytes()
  return tonumber(redis.call('GET', USED)) or 0
end

local function add_used(delta)
  if delta ~= 0 then
    redis.call('INCRBY', USED, string.format('%d', delta))
  end
end

local function entries()
  return redis.call('ZCARD', INDEX)
end

-- The <ns> of `<base>:c:<ns>:<hash>`, or nil for a key of another shape.
local function namespace_of(key)
  local prefix = BASE .. ':c:'
  if string.sub(key, 1, #prefix) ~= prefix then
    return nil
  end
  local colon = string.find(key, ':', #prefix + 1, true)
  if not colon then
    return nil
  end
  return string.sub(key, #prefix + 1, colon - 1)
end

local function join(set, key)
  redis.call('SADD', set, key)
  redis.call('SADD', SETS, set)
end

-- Leaves a member set; an emptied set (Redis deletes it) is also dropped from SETS,
-- so the list of set names stays as small as the tags actually in use.
local function leave(set, key)
  redis.call('SREM', set, key)
  if redis.call('SCARD', set) == 0 then
    redis.call('SREM', SETS, set)
  end
end

-- Drops one entry's index, size, tags and namespace membership and returns its size.
-- The caller settles the used-bytes counter and deletes the data key.
local function forget(key)
  local size = tonumber(redis.call('HGET', SIZES, key)) or 0
  local tags = redis.call('HGET', TAGS, key)
  if tags then
    for tag in string.gmatch(tags, '[^\n]+') do
      leave(BASE .. ':t:' .. tag, key)
    end
    redis.call('HDEL', TAGS, key)
  end
  local ns = namespace_of(key)
  if ns then
    leave(BASE .. ':n:' .. ns, key)
  end
  redis.call('HDEL', SIZES, key)
  redis.call('ZREM', INDEX, key)
  return size
end

-- Drops up to PURGE_LIMIT entries whose expiry has passed. Redis already expired their
-- data keys through PX; the DEL only keeps "not indexed => no data" true if clocks or
-- replication ever disagree. Returns true when more expired entries may remain.
local function purge_expired(now)
  local expired = redis.call('ZRANGEBYSCORE', INDEX, '-inf', now, 'LIMIT', 0, PURGE_LIMIT)
  local freed = 0
  for _, key in ipairs(expired) do
    freed = freed + forget(key)
    redis.call('DEL', key)
  end
  add_used(-freed)
  return #expired == PURGE_LIMIT
end

-- Removes one indexed entry completely; returns its size and whether it was live.
local function remove_entry(key, score, now)
  local size = forget(key)
  redis.call('DEL', key)
  return size, tonumber(score) > now
end

