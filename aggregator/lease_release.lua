-- Give up the aggregator lease, only if the caller still holds it (never delete a successor's).
--
-- KEYS[1]  the lease key (string): value = token of the holding aggregator
-- ARGV[1]  the caller's token
--
-- Returns 1 when released, 0 when the caller did not hold it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
