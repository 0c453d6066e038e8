-- End an operator job unless it ended already (a cancel's state stays).
--
-- KEYS[1] the job's hash; ARGV[1] the final state; ARGV[2] its error ('' for none);
-- ARGV[3] when (Unix ms). Returns the job's state after the call.
if redis.call('HGET', KEYS[1], 'state') == 'running' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2], 'finished_at', ARGV[3])
end
return redis.call('HGET', KEYS[1], 'state')
