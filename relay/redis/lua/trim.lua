-- Trim one stream towards its targets without removing anything a consumer group needs.
--
-- KEYS[1]  the stream
-- KEYS[2]  its trim marks (sorted set: member = an id that was the stream's last, score =
--          the stream's entries-added counter then, i.e. that entry's position ever)
-- ARGV[1]  MAXLEN target (0: none)
-- ARGV[2]  max age target in milliseconds (0: none)
-- ARGV[3]  hard MAXLEN (0: none): above it entries go even if a group still needs them
-- ARGV[4]  scan budget: at most this many entries are looked at when no mark serves, and
--          at most 20 times as many removed (whole stream nodes, cheap per entry)
--
-- The floor is the lowest id any group still needs: per group, its oldest pending entry or
-- else the entry after its last-delivered id; the minimum over the groups. Only entries
-- below the floor are trimmed towards the targets; a stream without groups has no floor.
--
-- Finding where MAXLEN cuts costs nothing with marks: the newest mark whose position is at
-- most (entries added - MAXLEN) may go with everything before it. A mark is left every
-- time the stream has grown by 1/100 of the target, so the stream stays within about 1 %
-- (or one trimming period's entries) above its target. Without a usable mark (a stream
-- over its target before its first marks) the cut is found by a scan of at most ARGV[4]
-- entries below the floor.
--
-- Returns {trimmed, dropped, more, floor}: entries removed in all; of them, entries at or
-- above the floor that the hard cap removed; 1 when the budget ran out before the targets
-- were reached (call again: each call holds Redis for a few milliseconds at most); the
-- floor ('' for none).
-- Runs in one atomic step: no group can read, be created or move between the floor being
-- computed and the trim, which is what makes the floor safe to trim below.

local stream, marks = KEYS[1], KEYS[2]
local maxlen = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local hard = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local chunk = math.max(20 * budget, 1000)
local more = 0

local before = redis.call('XLEN', stream)
if before == 0 then
  return {0, 0, 0, ''}
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function lower(a, b)  -- the lower of two ids; nil counts as +infinity
  if a == nil then return b end
  if b == nil then return a end
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  if ams < bms or (ams == bms and aseq < bseq) then return a end
  return b
end

local function after(id)  -- the lowest id greater than ``id``
  local ms, seq = parse(id)
  return string.format('%.0f-%.0f', ms, seq + 1)
end

local function fields(flat)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

-- XTRIM, but removing at most ``chunk`` entries per call: whole nodes (approximate, with
-- LIMIT, which stops before a node that would pass it; a node holds at most 100 entries)
-- while much is left, then exactly. A call that may have been capped asks for another.
local function trim(strategy, threshold)
  local removed = redis.call('XTRIM', stream, strategy, '~', threshold, 'LIMIT', chunk)
  if removed > chunk - 100 then
    more = 1
  else
    redis.call('XTRIM', stream, strategy, '=', threshold)
  end
end

local floor = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = fields(group)
  local need = after(info['last-delivered-id'])
  if tonumber(info['pending']) > 0 then
    local oldest = redis.call('XPENDING', stream, info['name'], '-', '+', 1)
    if oldest[1] then
      need = lower(need, oldest[1][1])
    end
  end
  floor = lower(floor, need)
end

-- Age: everything older than the cut-off and below the floor.
if max_age > 0 then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local cutoff = string.format('%.0f-0', now - max_age)
  trim('MINID', lower(cutoff, floor))
end

-- Length.
if maxlen > 0 and more == 0 then
  local info = fields(redis.call('XINFO', 'STREAM', stream))
  local added = tonumber(info['entries-added'])
  local newest = redis.call('ZRANGE', marks, 0, 0, 'REV', 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > added then
    redis.call('DEL', marks)  -- the stream was deleted and made anew: old marks mean nothing
    newest = {}
  end
  if not newest[2] or added - tonumber(newest[2]) >= math.max(1, math.floor(maxlen / 100)) then
    redis.call('ZADD', marks, added, info['last-generated-id'])
  end
  local over = info['length'] - maxlen
  local last = info['last-generated-id']
  if over > 0 then
    local usable = redis.call('ZRANGE', marks, added - maxlen, '-inf', 'BYSCORE', 'REV',
                              'LIMIT', 0, 1, 'WITHSCORES')
    if floor == nil or lower(floor, last) == last then
      -- No group needs any entry: exactly to the target.
      trim('MAXLEN', maxlen)
    elseif usable[1] then
      trim('MINID', lower(after(usable[1]), floor))
      redis.call('ZREMRANGEBYSCORE', marks, '-inf', '(' .. usable[2])
    else
      -- XRANGE's exclusive end keeps the floor itself.
      local count = math.min(over, budget)
      local below = redis.call('XRANGE', stream, '-', '(' .. floor, 'COUNT', count)
      if #below > 0 then
        redis.call('XTRIM', stream, 'MINID', '=', after(below[#below][1]))
      end
      if #below == count and count < over then
        more = 1
      end
    end
  end
end

-- The memory guard, once the safe trim is done: to the cap, counting what it removes at or
-- above the floor as dropped (what is left below the floor is within a mark of the target,
-- and goes first, uncounted).
local dropped = 0
if hard > 0 and more == 0 then
  local length = redis.call('XLEN', stream)
  if length > hard then
    local below = {}
    local count = math.min(length - hard, budget)
    if floor ~= nil then
      below = redis.call('XRANGE', stream, '-', '(' .. floor, 'COUNT', count)
    end
    if #below == count and count < length - hard then
      trim('MINID', after(below[#below][1]))
      more = 1
    else
      trim('MAXLEN', hard)
      if floor ~= nil then
        dropped = math.max(0, length - redis.call('XLEN', stream) - #below)
      end
    end
  end
end

return {before - redis.call('XLEN', stream), dropped, more, floor or ''}
