-- Record that a relay is receiving; a heartbeat older than the threshold means nobody was
-- receiving meanwhile: record the gap (widened by the margin) for the next sweep.
--
-- KEYS[1] the reconcile state hash; ARGV[1] now (ms); ARGV[2] threshold (ms);
-- ARGV[3] margin (ms).
-- Returns the previous heartbeat when a gap was recorded, else false.
local old = tonumber(redis.call('HGET', KEYS[1], 'heartbeat'))
local now = tonumber(ARGV[1])
if not old or now > old then redis.call('HSET', KEYS[1], 'heartbeat', now) end
redis.call('HSETNX', KEYS[1], 'epoch', now)
if old and now - old > tonumber(ARGV[2]) then
  local since = old - tonumber(ARGV[3])
  local pending = tonumber(redis.call('HGET', KEYS[1], 'gap_since'))
  if not pending or since < pending then redis.call('HSET', KEYS[1], 'gap_since', since) end
  local found = tonumber(redis.call('HGET', KEYS[1], 'gap_found'))
  if not found or now > found then redis.call('HSET', KEYS[1], 'gap_found', now) end
  return old
end
return false
