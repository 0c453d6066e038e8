-- Put a dead letter back on its stream once: the replay mark lives in its own sorted set
-- (not the ingest dedupe set, whose window is RELAY_DEDUPE_TTL), kept for ARGV[1] ms, and
-- the new entry id beside it (what the event trail follows from the dead letter).
-- No MAXLEN here: trimming the stream is the relay's job, which knows what groups need.
--
-- KEYS[1] the stream; KEYS[2] its replay marks; KEYS[3] the replays (hash: mark -> new
-- entry id); all in the stream's hash slot
-- ARGV[1] window ms; ARGV[2] the mark; ARGV[3..] the entry's field/value pairs
-- Returns the new entry id, or false when the mark was set inside the window.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local horizon = now - tonumber(ARGV[1])
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if score and tonumber(score) > horizon then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], id)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', horizon),
  'LIMIT', 0, 64)
if #old > 0 then
  redis.call('ZREM', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[3], unpack(old))
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return id
