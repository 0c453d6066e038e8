-- One stream's health figures in one call: what /metrics reports.
--
-- KEYS[1]  the stream
-- KEYS[2]  its dedupe set
--
-- Returns {length, dedupe members, then per group: name, lag ('' when Redis cannot tell;
-- 0 when the group was given the newest entry),
-- pending, oldest pending id ('' for none)}. Read-only; one call instead of 2 + groups
-- commands keeps a collection of 100 streams x 10 groups cheap on the relay's side.

local stream = KEYS[1]
local reply = {redis.call('XLEN', stream), redis.call('ZCARD', KEYS[2])}
if redis.call('EXISTS', stream) == 0 then
  return reply
end

-- Is entry id a at or after b? ("ms-seq"; the ms part fits a Lua number exactly)
local function at_or_after(a, b)
  local a_ms, a_seq = string.match(a, '(%d+)-(%d+)')
  local b_ms, b_seq = string.match(b, '(%d+)-(%d+)')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms > b_ms or (a_ms == b_ms and tonumber(a_seq) >= tonumber(b_seq))
end

-- A group delivered up to the newest entry has no lag, whatever Redis' counter says: the
-- entries-read counter behind XINFO's lag can be left behind for good by an AOF reload
-- after a crash or by a failover (Redis 7.0; seen by bench/soak.py), which would report a
-- caught-up group as lagging forever.
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  local oldest = ''
  if info['pending'] > 0 then
    local first = redis.call('XPENDING', stream, info['name'], '-', '+', 1)
    if first[1] then
      oldest = first[1][1]
    end
  end
  reply[#reply + 1] = info['name']
  if newest == nil or at_or_after(info['last-delivered-id'], newest[1]) then
    reply[#reply + 1] = '0'
  else
    reply[#reply + 1] = info['lag'] and tostring(info['lag']) or ''
  end
  reply[#reply + 1] = info['pending']
  reply[#reply + 1] = oldest
end
return reply
