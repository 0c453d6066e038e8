-- Claim an entry again for its next attempt, if it is still pending on this consumer.
-- XCLAIM without JUSTID increments Redis's delivery counter: the attempt count lives in
-- Redis and survives the worker.
--
-- KEYS[1] the stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] entry id.
-- Returns the new delivery count; 0 when the entry is no longer ours; -1 when its message
-- was trimmed or deleted (it is then acknowledged, never retried).
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not pending[1] or pending[1][2] ~= ARGV[2] then
  return 0
end
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3])
if #claimed == 0 or not claimed[1] then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  return -1
end
return redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1][4]
