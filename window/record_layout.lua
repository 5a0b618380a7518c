-- Record fields of the window layout, only while the record is still what the caller read: a
-- compare-and-set. The caller decided what to write from that reading (window/layout_record.py
-- holds the rules), so two processes starting at once cannot both record their own layout.
--
-- KEYS[1]  hash: the recorded layout (<prefix>:layout), field -> value
-- ARGV[1]  JSON object: the record as the caller read it ({} when nothing was recorded)
-- ARGV[2]  JSON object: the fields to set
--
-- Returns 1 when written, 0 when the record changed meanwhile (read it again, decide again).

local seen = cjson.decode(ARGV[1])
local stored = redis.call('HGETALL', KEYS[1])
local unmatched = 0
for _ in pairs(seen) do
  unmatched = unmatched + 1
end
for i = 1, #stored, 2 do
  if seen[stored[i]] ~= stored[i + 1] then
    return 0
  end
  unmatched = unmatched - 1
end
if unmatched ~= 0 then
  return 0
end
for field, value in pairs(cjson.decode(ARGV[2])) do
  redis.call('HSET', KEYS[1], field, value)
end
return 1
