-- Claim the right to emit the metric event of one window end: at most one claim per window end,
-- and only by the lease holder. The caller produces the event after a successful claim.
--
-- KEYS[1]  the lease key (string): value = token of the holding aggregator
-- KEYS[2]  the last emitted window end (string, epoch seconds; no TTL)
-- KEYS[3]  hash of claims whose delivery is not confirmed yet, "<seconds>:<end>:<revision>"
-- ARGV[1]  the caller's token
-- ARGV[2]  the window end to claim (epoch seconds)
-- ARGV[3..] the claims to note as unconfirmed (one per window length of this end)
--
-- Returns {1, previous}  claimed; last emitted is now ARGV[2]
--         {0, holder}    the caller does not hold the lease ('' when nobody does)
--         {-1, previous} a window ending at or after ARGV[2] was already claimed
-- previous is the last emitted window end before this call ('' when none).

local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  return {0, holder or ''}
end
local previous = redis.call('GET', KEYS[2])
if previous and tonumber(previous) >= tonumber(ARGV[2]) then
  return {-1, previous}
end
redis.call('SET', KEYS[2], ARGV[2])
for i = 3, #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], '1')
end
return {1, previous or ''}
