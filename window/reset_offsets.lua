-- Set the applied offsets of an input topic on an operator's request (`loginmetrics offsets
-- reset`, run while no worker holds the group), tied to the topic incarnation they were read
-- from, so the workers' next start keeps them (window/adopt_topic.lua would drop offsets of
-- another incarnation).
--
-- KEYS[1]  hash of the topic's applied offsets (field = partition, value = last applied offset)
-- KEYS[2]  string: the topic id those offsets belong to
-- ARGV[1]  the topic id the broker reports now ('' when it did not say: the stored id is kept)
-- ARGV[2], ARGV[3], ...  partition, new last applied offset ('' to forget the partition, which
--                        the workers then read from the group's committed offset)
--
-- Returns {0}          set, within the stored incarnation (or the first one recorded)
--         {1, old id}  the stored offsets belonged to another incarnation (the topic was
--                      recreated): they are dropped, as a worker would, before the new ones are set

local result = {0}
if ARGV[1] ~= '' then
  local stored = redis.call('GET', KEYS[2])
  if stored and stored ~= ARGV[1] then
    redis.call('DEL', KEYS[1])
    result = {1, stored}
  end
  redis.call('SET', KEYS[2], ARGV[1])
end
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return result
