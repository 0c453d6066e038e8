-- Append one entry to one stream unless one of its dedupe marks was seen there recently.
--
-- KEYS[1]  the stream
-- KEYS[2]  its dedupe set (same hash slot): member = dedupe mark, score = ms written
-- ARGV[1]  dedupe window in milliseconds
-- ARGV[2]  approximate MAXLEN of the stream
-- ARGV[3]  n, the number of dedupe marks that follow
-- ARGV[4 .. 3+n]  dedupe marks (the message id, plus any content marks)
-- ARGV[4+n ..]    the entry's field/value pairs
--
-- Returns the new entry id, or false when any mark was seen inside the window.
-- Reads come first and the stream write before the marks: a script that fails before
-- XADD has written nothing, and once XADD ran, Redis runs the script to the end.

local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local horizon = now - window
local marks = tonumber(ARGV[3])

for i = 4, 3 + marks do
  local seen = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if seen and tonumber(seen) > horizon then
    return false
  end
end

local fields = {}
for i = 4 + marks, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))

for i = 4, 3 + marks do
  redis.call('ZADD', KEYS[2], now, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', horizon))
redis.call('PEXPIRE', KEYS[2], window)
return entry
