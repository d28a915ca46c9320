-- Decide whether this process publishes the room's viewer count now, and what it is.
-- At most one process wins per interval; the count is published only if it changed.
-- KEYS[1] presence sorted set (member -> last seen ms)   KEYS[2] tick lock   KEYS[3] last count
-- ARGV[1] now (ms)   ARGV[2] member time-to-live (ms)   ARGV[3] interval (ms)   ARGV[4] token
-- Returns the count to publish, or -1 when there is nothing to publish.
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[3]) then return -1 end
local oldest = tonumber(ARGV[1]) - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest)
local count = redis.call('ZCARD', KEYS[1])
local last = redis.call('GET', KEYS[3])
if last and tonumber(last) == count then return -1 end
redis.call('SET', KEYS[3], count, 'EX', 86400)
return count
