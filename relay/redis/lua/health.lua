-- One stream's health figures in one call: what /metrics reports.
--
-- KEYS[1]  the stream
-- KEYS[2]  its dedupe set
--
-- Returns {length, dedupe members, then per group: name, lag ('' when Redis cannot tell),
-- pending, oldest pending id ('' for none)}. Read-only; one call instead of 2 + groups
-- commands keeps a collection of 100 streams x 10 groups cheap on the relay's side.

local stream = KEYS[1]
local reply = {redis.call('XLEN', stream), redis.call('ZCARD', KEYS[2])}
if redis.call('EXISTS', stream) == 0 then
  return reply
end
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
  reply[#reply + 1] = info['lag'] and tostring(info['lag']) or ''
  reply[#reply + 1] = info['pending']
  reply[#reply + 1] = oldest
end
return reply
