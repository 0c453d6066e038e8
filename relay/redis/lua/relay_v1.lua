#!lua name=relay_v1
-- The steps a worker in any language must get exactly right, each one idempotent FCALL
-- (docs/workers.md, "Workers in other languages"). Loaded by every relay and worker at
-- start-up, on every master of a cluster.
--
-- Versioning: a function's name carries its contract (relay_dead_letter_v1); a change of
-- keys, arguments or reply is a new name (…_v2) in a new library, beside this one, so that
-- workers of both versions run during a rolling upgrade. A fix that keeps the contract bumps
-- the revision below; a loader replaces the library only when its revision is newer.
local REVISION = 1

local DAY_MS = 86400000
local MOVE_WINDOW_MS = 30 * DAY_MS -- the marks of moves and replays, whatever the dedupe TTL
local DLQ_MAXLEN = '1000000'
local MAX_ERROR = 4000
-- Fields a dead letter adds, and the marker a replay adds: never carried further.
local ADDED = { error = true, attempts = true, group = true, original_id = true,
                failed_at = true, replayed_from = true }

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether `mark` is not yet in `marks` inside the window (`remember` sets it).
local function first_time(marks, mark, now)
  local score = redis.call('ZSCORE', marks, mark)
  if score and tonumber(score) > now - MOVE_WINDOW_MS then
    return false
  end
  return true
end

-- Set `mark`, and `records[mark] = id` (what the event trail follows: original entry ->
-- dead letter -> replayed entry); expired marks go with their records, a bounded batch
-- per call.
local function remember(marks, records, mark, id, now)
  redis.call('ZADD', marks, now, mark)
  redis.call('HSET', records, mark, id)
  local old = redis.call('ZRANGEBYSCORE', marks, '-inf',
    string.format('(%d', now - MOVE_WINDOW_MS), 'LIMIT', 0, 64)
  if #old > 0 then
    redis.call('ZREM', marks, unpack(old))
    redis.call('HDEL', records, unpack(old))
  end
  redis.call('PEXPIRE', marks, MOVE_WINDOW_MS)
  redis.call('PEXPIRE', records, MOVE_WINDOW_MS)
end

-- relay_dead_letter_v1: move one entry to the dead-letter stream, once per group.
-- KEYS[1] <stream>:dlq   KEYS[2] its dedupe set relay:dedupe:{<tag of KEYS[1]>}:<KEYS[1]>
-- KEYS[3] its trail records relay:trail:{<tag of KEYS[1]>}:<KEYS[1]> (mark -> dead letter id)
-- KEYS[4] (optional) <stream>: given when it shares a slot with KEYS[1] (always on a single
--         Redis), the entry is acknowledged here too; else the caller XACKs after.
-- ARGV    group, entry id, error, attempts, then the entry's field/value pairs as read.
-- Reply   {dead letter id or "" when it was written before, 1 acked here / 0 not}.
-- The mark dead/<group>/<entry id> makes a repeat (after a crash between this and XACK)
-- write nothing; the XACK is idempotent anyway.
local function dead_letter(keys, args)
  local dlq, marks, records, stream = keys[1], keys[2], keys[3], keys[4]
  local group, entry_id = args[1], args[2]
  local now = now_ms()
  local mark = 'dead/' .. group .. '/' .. entry_id
  local written = ''
  if first_time(marks, mark, now) then
    local fields = {}
    for i = 5, #args, 2 do
      if not ADDED[args[i]] or args[i] == 'replayed_from' then
        fields[#fields + 1] = args[i]
        fields[#fields + 1] = args[i + 1]
      end
    end
    fields[#fields + 1] = 'error'
    fields[#fields + 1] = string.sub(args[3], 1, MAX_ERROR)
    fields[#fields + 1] = 'attempts'
    fields[#fields + 1] = args[4]
    fields[#fields + 1] = 'group'
    fields[#fields + 1] = group
    fields[#fields + 1] = 'original_id'
    fields[#fields + 1] = entry_id
    fields[#fields + 1] = 'failed_at'
    fields[#fields + 1] = tostring(now)
    written = redis.call('XADD', dlq, 'MAXLEN', '~', DLQ_MAXLEN, '*', unpack(fields))
    remember(marks, records, mark, written, now)
  end
  local acked = 0
  if stream then
    acked = redis.call('XACK', stream, group, entry_id)
  end
  return { written, acked }
end

-- relay_replay_v1: put one dead letter back on its stream, once.
-- KEYS[1] <stream>   KEYS[2] its replay marks relay:replayed:{<tag of KEYS[1]>}:<KEYS[1]>
-- KEYS[3] its replays relay:replays:{<tag of KEYS[1]>}:<KEYS[1]> (mark -> new entry id)
-- ARGV    dead letter id, then its field/value pairs as read from <stream>:dlq.
-- Reply   the new entry id, or "" when this dead letter was replayed before. The caller
--         then deletes the dead letter (XDEL <stream>:dlq id): a repeat finds the mark.
-- The new entry has the original fields and replayed_from = the dead letter's id.
local function replay(keys, args)
  local stream, marks, records, dlq_id = keys[1], keys[2], keys[3], args[1]
  local now = now_ms()
  local mark = 'replay/' .. dlq_id
  if not first_time(marks, mark, now) then
    return ''
  end
  local fields = {}
  for i = 2, #args, 2 do
    if not ADDED[args[i]] then
      fields[#fields + 1] = args[i]
      fields[#fields + 1] = args[i + 1]
    end
  end
  fields[#fields + 1] = 'replayed_from'
  fields[#fields + 1] = dlq_id
  local id = redis.call('XADD', stream, '*', unpack(fields))
  remember(marks, records, mark, id, now)
  return id
end

redis.register_function('relay_dead_letter_v1', dead_letter)
redis.register_function('relay_replay_v1', replay)
redis.register_function{
  function_name = 'relay_v1_revision',
  callback = function() return REVISION end,
  flags = { 'no-writes' },
}
