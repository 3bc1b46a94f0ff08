-- gcra: one GCRA step, mirroring `store/gcra.rs` (`effective`, then `step`) line by line.
-- KEYS[1] holds the state: the theoretical arrival time `tat` in µs, a decimal string;
-- KEYS[2], when given, is the overrides hash (same hash tag as KEYS[1]).
-- ARGV: now_ms, rate, burst, period_ms, cost, rate field, burst field.
-- Replies {allowed (0/1), limit, burst, remaining, retry_after_ms, reset_after_ms}; when
-- admitted, stores the new tat with a TTL of ceil((tat - now) / 1000) + 1 ms.
-- The clock is the caller's (`now_ms`), never the server's.
--
-- Lua numbers are doubles, exact for integers below 2^53. Every figure here stays below
-- LIMIT = 2^53 - 2048 (so `us + 999` is exact too): the caller checks its arguments
-- against the same bound, and a figure computed here that would reach it (an absurd
-- override, a huge cost) is refused with `REFUSED ...` rather than rounded.
local LIMIT = 9007199254738944

-- `a / b` rounded down, for non-negative integers below LIMIT. (For such operands the
-- double quotient never rounds up to the next integer; the correction is only a guard.)
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- `us.div_ceil(1000)`.
local function ms(us)
  return idiv(us + 999, 1000)
end

local function int(n)
  return string.format('%.0f', n)
end

-- An override field counts only when it parses as a positive i64, as Rust's
-- `str::parse::<i64>` reads it (an optional sign, then ASCII digits, within i64).
-- Returns the value, or nil when the field does not count.
local function override(value)
  if not value then
    return nil
  end
  local digits = string.match(value, '^%+?(%d+)$')
  if not digits then
    return nil
  end
  digits = string.gsub(digits, '^0+', '')
  if digits == '' then
    return nil
  end
  if #digits > 19 or (#digits == 19 and digits > '9223372036854775807') then
    return nil
  end
  return tonumber(digits)
end

local function step()
  local now_ms, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  local period_ms, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
  if #KEYS > 1 then
    local o = redis.call('HMGET', KEYS[2], ARGV[6], ARGV[7])
    rate = override(o[1]) or rate
    burst = override(o[2]) or burst
  end
  rate = math.max(rate, 1)
  burst = math.max(burst, 1)
  if rate >= LIMIT or burst >= LIMIT then
    return nil, 'an overridden rate or burst'
  end

  local now = now_ms * 1000
  local t = math.max(idiv(period_ms * 1000, rate), 1)
  local tolerance = t * burst
  if tolerance >= LIMIT then
    return nil, 'the tolerance (period / rate * burst)'
  end
  local tat = now
  local stored = tonumber(redis.call('GET', KEYS[1]) or '')
  if stored and stored == math.floor(stored) and stored > now then
    if stored >= LIMIT then
      return nil, 'the stored arrival time'
    end
    tat = stored
  end
  local spend = t * cost
  if spend >= LIMIT or tat + spend >= LIMIT then
    return nil, 'the cost (period / rate * cost)'
  end
  local new_tat = tat + spend

  if new_tat - now > tolerance then
    local remaining = idiv(math.max(tolerance - (tat - now), 0), t)
    return {0, rate, burst, remaining, ms(new_tat - tolerance - now), ms(tat - now)}
  end
  redis.call('SET', KEYS[1], int(new_tat), 'PX', int(ms(new_tat - now) + 1))
  return {1, rate, burst, idiv(tolerance - (new_tat - now), t), 0, ms(new_tat - now)}
end

local reply, refused = step()
if refused then
  return redis.error_reply('REFUSED gcra: ' .. refused .. ' reaches 2^53 - 2048 us')
end
return reply
