-- write_atomic: KEYS[i] is the key of op i; ARGV holds, per op in order, its name, the
-- number of arguments that follow, and those arguments:
--   expect  <'1' value | '0' | '2'>  the plain value must equal value ('1'), be absent
--                               ('0') or be present ('2')
--   put     value               SET without TTL
--   del                         DEL
--   hset    (field, value)*     HSET, or HDEL for an empty value
--   zadd    (score, member)*    ZADD
--   zrem    member*             ZREM
-- Redis does not roll a script back when a command fails half way, so everything that
-- could fail is checked before the first write: every expectation, and the type of every
-- key a typed command touches. A failed expectation replies 0 having written nothing;
-- otherwise every op is applied and the reply is 1.
local ops = {}
local a = 1
for i = 1, #KEYS do
  local n = tonumber(ARGV[a + 1])
  ops[i] = { ARGV[a], a + 2, n }
  a = a + 2 + n
end
local want = { expect = 'string', hset = 'hash', zadd = 'zset', zrem = 'zset' }
for i, op in ipairs(ops) do
  local need = want[op[1]]
  if need then
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= need then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t)
    end
  end
  if op[1] == 'expect' then
    local current = redis.call('GET', KEYS[i])
    local mode = ARGV[op[2]]
    if mode == '1' then
      if current ~= ARGV[op[2] + 1] then
        return 0
      end
    elseif mode == '2' then
      if not current then
        return 0
      end
    elseif current then
      return 0
    end
  end
end
for i, op in ipairs(ops) do
  local name, s, n = op[1], op[2], op[3]
  if name == 'put' then
    redis.call('SET', KEYS[i], ARGV[s])
  elseif name == 'del' then
    redis.call('DEL', KEYS[i])
  elseif name == 'hset' then
    for j = s, s + n - 1, 2 do
      if ARGV[j + 1] == '' then
        redis.call('HDEL', KEYS[i], ARGV[j])
      else
        redis.call('HSET', KEYS[i], ARGV[j], ARGV[j + 1])
      end
    end
  elseif name == 'zadd' and n > 0 then
    local args = { 'ZADD', KEYS[i] }
    for j = s, s + n - 1 do
      args[#args + 1] = ARGV[j]
    end
    redis.call(unpack(args))
  elseif name == 'zrem' and n > 0 then
    local args = { 'ZREM', KEYS[i] }
    for j = s, s + n - 1 do
      args[#args + 1] = ARGV[j]
    end
    redis.call(unpack(args))
  end
end
return 1
