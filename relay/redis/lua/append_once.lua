-- Append one entry to each of several streams, skipping every stream where one of the
-- entry's dedupe marks was seen recently.
--
-- KEYS     pairs: a stream, then its dedupe set (member = dedupe mark, score = ms written)
-- ARGV[1]  dedupe window in milliseconds
-- ARGV[2]  approximate MAXLEN of the streams; 0: no trimming here (the ingest streams are
--          trimmed by relay/streams/trim.lua, which spares what consumer groups still need)
-- ARGV[3]  n, the number of dedupe marks that follow
-- ARGV[4 .. 3+n]  dedupe marks (the message id, and the content mark when there is one)
-- ARGV[4+n ..]    the entry's field/value pairs
--
-- Returns one reply per stream, in KEYS order: the new entry id, or false when a mark was
-- seen there inside the window. Each stream is settled on its own: its reads come first and
-- its write before its marks, so a stream never holds the entry without the marks nor the
-- marks without the entry; running the script again completes whatever an error left out.
-- One call serves every stream of a delivery on a single Redis; on Redis Cluster the
-- caller groups the streams by hash slot and makes one call per slot.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local horizon = now - window
local last_mark = 3 + tonumber(ARGV[3])

-- ZADD's score/member pairs, the same for every stream: every mark scored now.
local scored = {}
for i = 4, last_mark do
  scored[#scored + 1] = now
  scored[#scored + 1] = ARGV[i]
end

local written = {}
for k = 1, #KEYS, 2 do
  local stream, marks = KEYS[k], KEYS[k + 1]
  local seen = false
  local scores = redis.call('ZMSCORE', marks, unpack(ARGV, 4, last_mark))
  for i = 1, last_mark - 3 do
    local score = scores[i]
    if score and tonumber(score) > horizon then
      seen = true
      break
    end
  end
  if seen then
    written[#written + 1] = false
  else
    if ARGV[2] == '0' then
      written[#written + 1] = redis.call('XADD', stream, '*', unpack(ARGV, last_mark + 1))
    else
      written[#written + 1] = redis.call(
        'XADD', stream, 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, last_mark + 1))
    end
    redis.call('ZADD', marks, unpack(scored))
    redis.call('ZREMRANGEBYSCORE', marks, '-inf', string.format('(%d', horizon))
    redis.call('PEXPIRE', marks, window)
  end
end
return written
