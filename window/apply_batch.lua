-- Apply one poll batch to the shared window, atomically, only while this worker still owns
-- every partition of the batch (a compare-and-set on each partition's applied offset).
--
-- KEYS[1]  hash of the input topic's applied offsets: field = partition, value = last offset
--          whose effect is in the window
-- ARGV[1]  bucket key prefix, e.g. "loginmetrics:bucket:"
-- ARGV[2]  bucket length in seconds
-- ARGV[3]  TTL of the bucket keys in seconds
-- ARGV[4]  JSON batch:
--          {"offsets": [[partition, expected, applied], ...],
--           -- offsets are decimal strings (exact beyond 2^53); expected "" when nothing is stored
--           "users": [...], "ips": [...],
--           "devices": {name: n}, "versions": {name: n}, "locales": {name: n},
--           "valid": n, "invalid": n}
-- ARGV[5]  most values one bucket's distribution tracks (TRACKED_VALUES in window/layout.py)
-- ARGV[6]  the member that counts every value beyond them: "__other__"
--
-- Keys written, B = start second of the current bucket by the Redis server clock:
--   <prefix>B:users, <prefix>B:ips        HyperLogLog (PFADD)
--   <prefix>B:devices, :versions, :locales sorted sets (ZINCRBY), at most ARGV[5] members plus
--                                          ARGV[6]: a bucket's memory is bounded whatever the
--                                          traffic, and each still sums to the valid count
--   <prefix>B:counts                       hash with fields valid, invalid (HINCRBY)
-- The bucket comes from the server clock so that every worker, on any host, writes the bucket
-- the aggregator will read, and a bucket the aggregator has read is never written again.
-- Bucket keys are derived here rather than passed in KEYS: this targets a single Redis, not Cluster.
--
-- Returns {1, B} when applied, {0, partition, stored} when a partition's stored offset is not
-- the expected one (another worker owns it now); nothing is written then.

local batch = cjson.decode(ARGV[4])

for _, advance in ipairs(batch.offsets) do
  local stored = redis.call('HGET', KEYS[1], advance[1]) or ''
  if stored ~= advance[2] then
    return {0, advance[1], stored}
  end
end

local now = redis.call('TIME')
local bucket_seconds = tonumber(ARGV[2])
local bucket = math.floor(tonumber(now[1]) / bucket_seconds) * bucket_seconds
local base = ARGV[1] .. bucket .. ':'
local ttl = tonumber(ARGV[3])

-- unpack() is bounded by the Lua C stack, so large sets go in chunks.
local function pfadd(key, members)
  local chunk = 4000
  for i = 1, #members, chunk do
    redis.call('PFADD', key, unpack(members, i, math.min(i + chunk - 1, #members)))
  end
  if #members > 0 then redis.call('EXPIRE', key, ttl) end
end

local tracked = tonumber(ARGV[5])
local other = ARGV[6]

-- A value already in the bucket, or a new one while there is room, is counted as itself; the
-- rest under `other`. Counts are positive, so ZINCRBY returning n means the member is new.
local function zincr(key, counts)
  local touched = false
  local size = redis.call('ZCARD', key)
  local beyond = 0
  for member, n in pairs(counts) do
    if size < tracked or redis.call('ZSCORE', key, member) then
      if tonumber(redis.call('ZINCRBY', key, n, member)) == n then size = size + 1 end
    else
      beyond = beyond + n
    end
    touched = true
  end
  if beyond > 0 then redis.call('ZINCRBY', key, beyond, other) end
  if touched then redis.call('EXPIRE', key, ttl) end
end

pfadd(base .. 'users', batch.users)
pfadd(base .. 'ips', batch.ips)
zincr(base .. 'devices', batch.devices)
zincr(base .. 'versions', batch.versions)
zincr(base .. 'locales', batch.locales)

local counts = base .. 'counts'
redis.call('HINCRBY', counts, 'valid', batch.valid)
redis.call('HINCRBY', counts, 'invalid', batch.invalid)
redis.call('EXPIRE', counts, ttl)

for _, advance in ipairs(batch.offsets) do
  redis.call('HSET', KEYS[1], advance[1], advance[3])
end

return {1, bucket}
