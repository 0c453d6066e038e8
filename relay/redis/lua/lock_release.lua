-- Release a lock only when it is still ours (compare-and-delete).
--
-- KEYS[1] the lock; ARGV[1] our token.
-- Returns 1 when deleted, 0 when the lock expired or another holder has it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
