-- Roll one finished bucket of a coarser tier (a minute from second buckets, an hour from
-- minutes) up from its sources, and move the tier's progress, atomically and at most once.
--
-- KEYS[1]  the tier's progress: start (epoch second) of its newest bucket rolled up
-- ARGV[1]  source key prefix, e.g. "loginmetrics:bucket:" (or "loginmetrics:minute:")
-- ARGV[2]  source bucket length in seconds
-- ARGV[3]  target key prefix, e.g. "loginmetrics:minute:" (or "loginmetrics:hour:")
-- ARGV[4]  target bucket length in seconds (a multiple of ARGV[2])
-- ARGV[5]  start of the target bucket to roll (a multiple of ARGV[4])
-- ARGV[6]  TTL of the target keys in seconds
-- ARGV[7]  most values one bucket's distribution tracks (TRACKED_VALUES in window/layout.py)
-- ARGV[8]  the member that counts every value beyond them: "__other__"
--
-- Keys read, S = every source start in [ARGV[5], ARGV[5] + ARGV[4]):
--   <source prefix>S:counts, :users, :ips, :devices, :versions, :locales
-- Keys written, T = ARGV[5]: <target prefix>T:<the same fields>
--   users, ips      PFMERGE of the sources (HyperLogLog unions are lossless)
--   devices, ...    ZUNIONSTORE of the sources, then at most ARGV[7] members plus ARGV[8]: the
--                   smallest are summed under ARGV[8], so it still sums to the valid count
--   counts          hash of valid, invalid: the sums of the sources'
-- Bucket keys are derived here rather than passed in KEYS: this targets a single Redis, not Cluster.
--
-- Idempotent twice over: a target at or before the progress is left alone (a repeat, or a
-- leader that lost its lease mid-roll, changes nothing), and the target is written whole from
-- its sources rather than added to, so even a progress lost by Redis never double-counts.
--
-- Returns {1, sources with any message} when rolled, {0, progress} when already rolled.

local start = tonumber(ARGV[5])
local progress = redis.call('GET', KEYS[1])
if progress and tonumber(progress) >= start then
  return {0, progress}
end

local source_prefix, source_step = ARGV[1], tonumber(ARGV[2])
local target = ARGV[3] .. ARGV[5] .. ':'
local ttl, tracked, other = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]

-- A source bucket that saw any message has a counts hash (the apply script always writes it),
-- so the others are skipped without touching their keys.
local sources = {}
local valid, invalid = 0, 0
for s = start, start + tonumber(ARGV[4]) - source_step, source_step do
  local base = source_prefix .. s .. ':'
  local counts = redis.call('HMGET', base .. 'counts', 'valid', 'invalid')
  if counts[1] or counts[2] then
    sources[#sources + 1] = base
    valid = valid + (tonumber(counts[1]) or 0)
    invalid = invalid + (tonumber(counts[2]) or 0)
  end
end

local fields = {'users', 'ips', 'devices', 'versions', 'locales', 'counts'}
for _, field in ipairs(fields) do
  redis.call('DEL', target .. field)
end

local function keys_of(field)
  local keys = {}
  for i, base in ipairs(sources) do keys[i] = base .. field end
  return keys
end

-- The union's largest values are kept as themselves; the rest, with whatever the sources
-- already counted under `other`, is summed under `other`.
local function capped_union(field)
  local key = target .. field
  redis.call('ZUNIONSTORE', key, #sources, unpack(keys_of(field)))
  local beyond = tonumber(redis.call('ZSCORE', key, other) or '0')
  redis.call('ZREM', key, other)
  local excess = redis.call('ZCARD', key) - tracked
  if excess > 0 then
    local smallest = redis.call('ZRANGE', key, 0, excess - 1, 'WITHSCORES')
    for i = 2, #smallest, 2 do beyond = beyond + tonumber(smallest[i]) end
    redis.call('ZREMRANGEBYRANK', key, 0, excess - 1)
  end
  if beyond > 0 then redis.call('ZADD', key, beyond, other) end
end

if #sources > 0 then
  redis.call('PFMERGE', target .. 'users', unpack(keys_of('users')))
  redis.call('PFMERGE', target .. 'ips', unpack(keys_of('ips')))
  capped_union('devices')
  capped_union('versions')
  capped_union('locales')
  redis.call('HSET', target .. 'counts', 'valid', valid, 'invalid', invalid)
  for _, field in ipairs(fields) do
    redis.call('EXPIRE', target .. field, ttl)
  end
end

redis.call('SET', KEYS[1], ARGV[5])
return {1, #sources}
