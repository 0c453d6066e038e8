-- Extend a lock only when it is still ours (compare-and-expire).
--
-- KEYS[1] the lock; ARGV[1] our token; ARGV[2] the new TTL in ms.
-- Returns 1 when extended, 0 when the lock expired or another holder has it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
