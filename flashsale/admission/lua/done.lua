-- A settled order leaves the stream: acknowledged in the consumer group (out of its consumer's pending list) and
-- deleted (out of the stream's length, which is the queue's depth).
-- KEYS: the stream. ARGV: the group, the entry's id.
-- Reply: 1 if this call acknowledged it, 0 if it was acknowledged already.
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
