-- Reset the idle time of entries a live consumer still works on, so that no other consumer
-- takes them over (XCLAIM ... JUSTID leaves the delivery counter alone).
--
-- KEYS[1] the stream; ARGV[1] group; ARGV[2] consumer; ARGV[3..] entry ids it holds.
-- Returns {lost, gone}: the ids no longer pending on this consumer (acknowledged or taken
-- over), and the ids whose message was trimmed or deleted (XCLAIM drops those from the
-- group's pending list and leaves them out of its reply).
local kept = {}
local lost = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    kept[#kept + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
local gone = {}
if #kept > 0 then
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(kept) do args[#args + 1] = id end
  args[#args + 1] = 'JUSTID'
  local claimed = {}
  for _, id in ipairs(redis.call(unpack(args))) do claimed[id] = true end
  for _, id in ipairs(kept) do
    if not claimed[id] then
      gone[#gone + 1] = id
      redis.call('XACK', KEYS[1], ARGV[1], id)
    end
  end
end
return {lost, gone}
