-- counters_set: KEYS[1] is the counters hash; ARGV holds (field, value) pairs, applied in
-- order. A value is a decimal i64 written as is; an empty value removes the field.
-- Every command touches the one hash, so a wrong type fails the first command, before
-- anything is written.
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
