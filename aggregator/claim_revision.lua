-- Claim the next revision of an emitted window (event time: late messages changed it): each
-- revision number is granted once, and only to the lease holder. The caller produces the
-- revised event after a successful claim.
--
-- KEYS[1]  the lease key (string): value = token of the holding aggregator
-- KEYS[2]  hash: "<window seconds>:<end>" -> last revision claimed (absent: 0, the first event)
-- KEYS[3]  hash of claims whose delivery is not confirmed yet, "<seconds>:<end>:<revision>"
-- ARGV[1]  the caller's token
-- ARGV[2]  the field, "<window seconds>:<end>"
--
-- Returns {1, revision} claimed, {0, holder} when the caller does not hold the lease.

local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  return {0, holder or ''}
end
local revision = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HSET', KEYS[3], ARGV[2] .. ':' .. revision, '1')
return {1, revision}
