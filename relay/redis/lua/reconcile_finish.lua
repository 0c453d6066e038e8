-- Record a successful sweep of [since, until]; clear the pending gap it covers (a gap
-- found after the sweep began stays).
--
-- KEYS[1] the reconcile state hash; ARGV[1] since (ms); ARGV[2] until (ms); ARGV[3] done (ms).
-- Returns 1 when a gap was cleared, else 0.
local since, untl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'last_since', since, 'last_until', untl, 'last_done', ARGV[3])
local gap_since = tonumber(redis.call('HGET', KEYS[1], 'gap_since'))
local gap_found = tonumber(redis.call('HGET', KEYS[1], 'gap_found'))
if gap_since and gap_since >= since and gap_found and gap_found <= untl then
  redis.call('HDEL', KEYS[1], 'gap_since', 'gap_found')
  return 1
end
return 0
