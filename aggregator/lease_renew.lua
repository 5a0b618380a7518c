-- Extend the aggregator lease, only while the caller still holds it.
--
-- KEYS[1]  the lease key (string): value = token of the holding aggregator
-- ARGV[1]  the caller's token
-- ARGV[2]  new time to live in milliseconds
--
-- Returns 1 when renewed, 0 when the lease expired or another aggregator holds it now.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
