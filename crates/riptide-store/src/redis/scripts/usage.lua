-- cache_usage: drops expired entries, then replies {used bytes, entries, more}; `more`
-- is 1 when expired entries may remain (the caller asks again).
local more = 0
if purge_expired(now_ms()) then
  more = 1
end
return {used_bytes(), entries(), more}
