-- Event time: note which of a worker's partitions are caught up with the end of their log, by
-- the Redis clock, so that the aggregator can leave idle partitions out of the watermark.
--
-- KEYS[1]  hash: partition -> "<since>:<seen>" (Redis clock seconds): caught up since <since>,
--          last found so at <seen>
-- KEYS[2]  the end of the newest window emitted (the aggregator's claim)
-- ARGV     partition, flag pairs: flag 1 caught up, 0 not (its entry is removed)
--
-- Returns {the Redis clock in seconds, the newest emitted window end or ''}.

local now = redis.call('TIME')[1]
for i = 1, #ARGV, 2 do
  local partition, caught_up = ARGV[i], ARGV[i + 1]
  if caught_up == '1' then
    local mark = redis.call('HGET', KEYS[1], partition)
    local since = mark and string.match(mark, '^(%d+):') or now
    redis.call('HSET', KEYS[1], partition, since .. ':' .. now)
  else
    redis.call('HDEL', KEYS[1], partition)
  end
end
return {now, redis.call('GET', KEYS[2]) or ''}
