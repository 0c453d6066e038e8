-- Put a dead letter back on its stream once: the replay mark lives in its own sorted set
-- (not the ingest dedupe set, whose window is RELAY_DEDUPE_TTL), kept for ARGV[1] ms.
-- No MAXLEN here: trimming the stream is the relay's job, which knows what groups need.
--
-- KEYS[1] the stream; KEYS[2] its replay marks (same hash slot)
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
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', horizon))
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return id
