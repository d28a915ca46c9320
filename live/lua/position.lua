-- A room's stream position, creating its epoch if it has none yet.
-- KEYS[1] seq counter   KEYS[2] epoch   KEYS[3] stream   KEYS[4] dedup hash
-- ARGV[1] epoch to use if the room has none   ARGV[2] key TTL in seconds
-- Returns {seq, epoch}.
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
  redis.call('SET', KEYS[2], epoch, 'EX', ARGV[2])
end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
return {seq, epoch}
