-- Move one partition's applied offset back, when the partition no longer holds what the window
-- says was applied (its log was truncated or replaced): a compare-and-set like the batch apply.
--
-- KEYS[1]  hash of the topic's applied offsets
-- ARGV[1]  partition
-- ARGV[2]  the offset this worker read (decimal string)
-- ARGV[3]  the new last applied offset ("" to forget the partition: read it from its start)
--
-- Returns 1 when moved, 0 when the stored offset was not ARGV[2] (someone else owns it now).

if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
