-- Append one event to a room's log: assign seq, store, publish. Atomic (one script).
-- KEYS[1] seq counter   KEYS[2] epoch   KEYS[3] stream   KEYS[4] dedup hash
-- ARGV[1] pub/sub channel   ARGV[2] event type   ARGV[3] data (JSON text)
-- ARGV[4] stream max length (approximate)   ARGV[5] key TTL in seconds
-- ARGV[6] epoch to use if the room has none   ARGV[7] dedup key ('' for none)
-- Returns the encoded event (for a duplicate: the event stored first, or '' if trimmed).
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  -- No epoch: the history is gone (new room, flush, expiry). Start a fresh one.
  epoch = ARGV[6]
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
  redis.call('SET', KEYS[2], epoch)
end
if ARGV[7] ~= '' then
  local earlier = redis.call('HGET', KEYS[4], ARGV[7])
  if earlier then
    local found = redis.call('XRANGE', KEYS[3], earlier .. '-0', earlier .. '-0')
    if #found > 0 then return found[1][2][2] end
    return ''
  end
end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local raw = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '","type":"' .. ARGV[2]
  .. '","ts":' .. ts .. ',"data":' .. ARGV[3] .. '}'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'e', raw)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[4], ARGV[7], seq) end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
redis.call('PUBLISH', ARGV[1], raw)
return raw
