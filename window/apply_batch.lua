-- Apply one poll batch to the shared window, atomically, only while this worker still owns
-- every partition of the batch (a compare-and-set on each partition's applied offset).
--
-- KEYS[1]  hash of the input topic's applied offsets: field = partition, value = last offset
--          whose effect is in the window
-- KEYS[2]  event time: hash of the partitions' watermarks (written with the offsets)
-- KEYS[3]  event time: the end of the newest window emitted (the aggregator's claim)
-- KEYS[4]  event time: sorted set of buckets written after a window holding them was emitted
--          (score: how many such writes the aggregator has not taken back yet)
-- KEYS[5]  event time: the oldest bucket written
-- ARGV[1]  bucket key prefix, e.g. "loginmetrics:bucket:"
-- ARGV[2]  bucket length in seconds
-- ARGV[3]  TTL of the bucket keys in seconds
-- ARGV[4]  JSON batch:
--          {"offsets": [[partition, expected, applied], ...],
--           -- offsets are decimal strings (exact beyond 2^53); expected "" when nothing is stored
--           processing time, one bucket: the increments at the top level,
--             "users": [...], "ips": [...],
--             "devices": {name: n}, "versions": {name: n}, "locales": {name: n},
--             "valid": n, "invalid": n
--           event time: "buckets": [[start, increments as above], ...],
--             "watermarks": [[partition, watermark], ...]}
-- ARGV[5]  most values one bucket's distribution tracks (TRACKED_VALUES in window/layout.py)
-- ARGV[6]  the member that counts every value beyond them: "__other__"
--
-- Keys written per bucket B (processing time: the start second of the current bucket by the
-- Redis server clock; event time: each bucket the batch names):
--   <prefix>B:users, <prefix>B:ips        HyperLogLog (PFADD)
--   <prefix>B:devices, :versions, :locales sorted sets (ZINCRBY), at most ARGV[5] members plus
--                                          ARGV[6]: a bucket's memory is bounded whatever the
--                                          traffic, and each still sums to the valid count
--   <prefix>B:counts                       hash with fields valid, invalid (HINCRBY)
-- In processing time the bucket comes from the server clock so that every worker, on any host,
-- writes the bucket the aggregator will read, and a bucket the aggregator has read is never
-- written again. In event time a bucket older than the newest emitted window end is noted in
-- KEYS[4], so that the windows holding it are emitted again.
-- Bucket keys are derived here rather than passed in KEYS: this targets a single Redis, not Cluster.
--
-- Returns {1, B, now, emitted, first} when applied (B: the newest bucket written, now: the Redis
-- clock in seconds; event time: KEYS[3] and KEYS[5] as they stand, '' when unset),
-- {0, partition, stored} when a partition's stored offset is not the expected one (another
-- worker owns it now); nothing is written then.

local batch = cjson.decode(ARGV[4])

for _, advance in ipairs(batch.offsets) do
  local stored = redis.call('HGET', KEYS[1], advance[1]) or ''
  if stored ~= advance[2] then
    return {0, advance[1], stored}
  end
end

local now = redis.call('TIME')
local bucket_seconds = tonumber(ARGV[2])
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

local function write(bucket, increments)
  local base = ARGV[1] .. bucket .. ':'
  pfadd(base .. 'users', increments.users)
  pfadd(base .. 'ips', increments.ips)
  zincr(base .. 'devices', increments.devices)
  zincr(base .. 'versions', increments.versions)
  zincr(base .. 'locales', increments.locales)
  local counts = base .. 'counts'
  redis.call('HINCRBY', counts, 'valid', increments.valid)
  redis.call('HINCRBY', counts, 'invalid', increments.invalid)
  redis.call('EXPIRE', counts, ttl)
end

local newest, emitted, first
if batch.buckets then
  emitted = tonumber(redis.call('GET', KEYS[3]) or '')
  first = tonumber(redis.call('GET', KEYS[5]) or '')
  for _, entry in ipairs(batch.buckets) do
    local bucket = entry[1]
    write(bucket, entry[2])
    if emitted and bucket < emitted then
      redis.call('ZINCRBY', KEYS[4], 1, bucket)  -- counted, so a read and take-back loses none
    end
    if not first or bucket < first then
      first = bucket
      redis.call('SET', KEYS[5], bucket)
    end
    if not newest or bucket > newest then newest = bucket end
  end
  for _, mark in ipairs(batch.watermarks) do
    redis.call('HSET', KEYS[2], mark[1], mark[2])
  end
else
  newest = math.floor(tonumber(now[1]) / bucket_seconds) * bucket_seconds
  write(newest, batch)
end

for _, advance in ipairs(batch.offsets) do
  redis.call('HSET', KEYS[1], advance[1], advance[3])
end

local clock = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
return {1, newest or '', clock, emitted or '', first or ''}
