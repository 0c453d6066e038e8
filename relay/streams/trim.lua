-- Trim one stream towards its targets without removing anything a consumer group needs.
--
-- KEYS[1]  the stream
-- ARGV[1]  MAXLEN target (0: none)
-- ARGV[2]  max age target in milliseconds (0: none)
-- ARGV[3]  hard MAXLEN (0: none): above it entries go even if a group still needs them
-- ARGV[4]  scan budget: at most this many entries are looked at per call
--
-- The floor is the lowest id any group still needs: per group, its oldest pending entry or
-- else the entry after its last-delivered id; the minimum over the groups. Only entries
-- below the floor are trimmed towards the targets; a stream without groups has no floor.
--
-- Returns {trimmed, dropped, more, floor}: entries removed in all; of them, entries at or
-- above the floor that the hard cap removed; 1 when the scan budget ran out before the
-- MAXLEN target was reached (call again); the floor ('' for none).
-- Runs in one atomic step: no group can read, create or move between the floor being
-- computed and the trim, which is what makes the floor safe to trim below.

local stream = KEYS[1]
local maxlen = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local hard = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])

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

local floor = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
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
  redis.call('XTRIM', stream, 'MINID', '=', lower(cutoff, floor))
end

-- Length: without a floor, to the target at once; with one, the oldest entries below it,
-- found by a bounded scan (XRANGE's exclusive end keeps the floor itself).
local more = 0
if maxlen > 0 then
  local over = redis.call('XLEN', stream) - maxlen
  if over > 0 then
    if floor == nil then
      redis.call('XTRIM', stream, 'MAXLEN', '=', maxlen)
    else
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

-- The memory guard, once the safe trim is complete: whatever is left above it is at or
-- above the floor (the safe trim removed everything below that the targets allowed).
local dropped = 0
if hard > 0 and more == 0 then
  local excess = redis.call('XLEN', stream) - hard
  if excess > 0 then
    redis.call('XTRIM', stream, 'MAXLEN', '=', hard)
    dropped = excess
  end
end

return {before - redis.call('XLEN', stream), dropped, more, floor or ''}
