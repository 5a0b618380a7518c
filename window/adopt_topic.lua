-- Tie the applied offsets of an input topic to one incarnation of it (its Kafka topic id).
--
-- KEYS[1]  hash of the topic's applied offsets (field = partition, value = last applied offset)
-- KEYS[2]  string: the topic id those offsets belong to
-- ARGV[1]  the topic id the broker reports now
--
-- Returns {0}                      the same incarnation, or the first id ever recorded (offsets
--                                  stored before ids were recorded are kept)
--         {1, old id, p1, o1, ...} a new incarnation: the old offsets (returned for the log) are
--                                  dropped, so its partitions are read from their start

local stored = redis.call('GET', KEYS[2])
if stored == ARGV[1] then
  return {0}
end
redis.call('SET', KEYS[2], ARGV[1])
if not stored then
  return {0}
end
local dropped = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
local result = {1, stored}
for _, value in ipairs(dropped) do
  result[#result + 1] = value
end
return result
