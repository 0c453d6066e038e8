-- Append one entry to each of several streams, skipping every stream where one of the
-- entry's dedupe marks was seen recently, and record what the event trail needs.
--
-- KEYS     quadruples: a stream, its dedupe set (member = dedupe mark, score = ms written),
--          its trail records (hash: first mark -> record, see below) and its extraction
--          index (hash: extraction id -> the first marks of its events, "\n"-separated)
-- ARGV[1]  dedupe window in milliseconds
-- ARGV[2]  approximate MAXLEN of the streams; 0: no trimming here (the ingest streams are
--          trimmed by relay/streams/trim.lua, which spares what consumer groups still need)
-- ARGV[3]  n, the number of dedupe marks that follow
-- ARGV[4]  the body's digest ('' for none: no conflict check)
-- ARGV[5]  received_at (Unix ms); ARGV[6] the event; ARGV[7] the extraction id ('' for none)
-- ARGV[8 .. 7+n]  dedupe marks (the message id first, then the content mark if any)
-- ARGV[8+n ..]    the entry's field/value pairs
--
-- The trail record of the first mark, in the first stream of the call: "<entry id> <digest>
-- <duplicates> <received_at> <length of event> <event><extraction id>" (the event and the
-- extraction id are the sender's: a length, not a separator, tells where one ends); the
-- extraction index is kept there too. In the call's other streams the record is the entry
-- id alone: what an event's streams share is stored once (memory per delivery). A duplicate
-- counts itself in the first stream's record; when its digest differs from the recorded one,
-- that stream's reply is {recorded digest}: the same id with another body (a conflict).
--
-- Returns one reply per stream, in KEYS order: the new entry id, false when a mark was seen
-- there inside the window, or {digest} for a conflicting duplicate. Each stream is settled
-- on its own: its reads come first and its write before its marks, so a stream never holds
-- the entry without the marks nor the marks without the entry; running the script again
-- completes whatever an error left out. Expired marks are removed with their records, at
-- most EXPIRE_BATCH per stream and call (bounded work; the backlog drains over the calls).
-- One call serves every stream of a delivery on a single Redis; on Redis Cluster the
-- caller groups the streams by hash slot and makes one call per slot.

local EXPIRE_BATCH = 64
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local horizon = now - window
local last_mark = 7 + tonumber(ARGV[3])
local digest, event, extraction = ARGV[4], ARGV[6], ARGV[7]
local first = ARGV[8]
local record_tail = ' 0 ' .. ARGV[5] .. ' ' .. #event .. ' ' .. event .. extraction

-- ZADD's score/member pairs, the same for every stream: every mark scored now.
local scored = {}
for i = 8, last_mark do
  scored[#scored + 1] = now
  scored[#scored + 1] = ARGV[i]
end

local function count_duplicate(records)
  local record = redis.call('HGET', records, first)
  if not record or not string.find(record, ' ', 1, true) then
    return false  -- a duplicate by its content mark (another id holds the record), or a
  end             -- short record: counted in the first stream's
  local entry, recorded, duplicates, rest = string.match(record, '^(%S+) (%S*) (%d+) (.*)$')
  redis.call('HSET', records, first,
    entry .. ' ' .. recorded .. ' ' .. (tonumber(duplicates) + 1) .. ' ' .. rest)
  if digest ~= '' and recorded ~= '' and recorded ~= digest then
    return {recorded}
  end
  return false
end

-- The index lists each extraction's events: few, so a list in one field is cheapest.
local function unindex(index, extraction, mark)
  local listed = redis.call('HGET', index, extraction)
  if not listed then
    return
  end
  local kept = {}
  for member in string.gmatch(listed, '[^\n]+') do
    if member ~= mark then
      kept[#kept + 1] = member
    end
  end
  if #kept == 0 then
    redis.call('HDEL', index, extraction)
  else
    redis.call('HSET', index, extraction, table.concat(kept, '\n'))
  end
end

local function index_event(index)
  local listed = redis.call('HGET', index, extraction)
  if not listed then
    redis.call('HSET', index, extraction, first)
  elseif not string.find('\n' .. listed .. '\n', '\n' .. first .. '\n', 1, true) then
    redis.call('HSET', index, extraction, listed .. '\n' .. first)
  end
  redis.call('PEXPIRE', index, window)
end

local function expire(marks, records, index)
  local old = redis.call('ZRANGEBYSCORE', marks, '-inf', string.format('(%d', horizon),
    'LIMIT', 0, EXPIRE_BATCH)
  if #old == 0 then
    return
  end
  for _, mark in ipairs(old) do
    local record = redis.call('HGET', records, mark)
    if record then
      local length, rest = string.match(record, '^%S+ %S* %d+ %d+ (%d+) (.*)$')
      if length then
        local gone = string.sub(rest, tonumber(length) + 1)
        if gone ~= '' then
          unindex(index, gone, mark)
        end
      end
      redis.call('HDEL', records, mark)
    end
  end
  redis.call('ZREM', marks, unpack(old))
end

local written = {}
for k = 1, #KEYS, 4 do
  local stream, marks, records, index = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local seen = false
  local scores = redis.call('ZMSCORE', marks, unpack(ARGV, 8, last_mark))
  for i = 1, last_mark - 7 do
    local score = scores[i]
    if score and tonumber(score) > horizon then
      seen = true
      break
    end
  end
  if seen then
    written[#written + 1] = count_duplicate(records)
  else
    local entry
    if ARGV[2] == '0' then
      entry = redis.call('XADD', stream, '*', unpack(ARGV, last_mark + 1))
    else
      entry = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, last_mark + 1))
    end
    written[#written + 1] = entry
    if k == 1 then
      redis.call('HSET', records, first, entry .. ' ' .. digest .. record_tail)
      if extraction ~= '' then
        index_event(index)
      end
    else
      redis.call('HSET', records, first, entry)
    end
    redis.call('ZADD', marks, unpack(scored))
    redis.call('PEXPIRE', marks, window)
    redis.call('PEXPIRE', records, window)
    expire(marks, records, index)
  end
end
return written
