-- Put an accepted order on the order stream if it has room: the stream holds the orders waiting for a settler and
-- those being settled (each is deleted once settled), so its length is the queue's depth, shared by every process.
-- KEYS: the stream. ARGV: its size, the order's id.
-- Reply: the entry's id, or false (nil) when the stream is full.
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[1], '*', 'order', ARGV[2])
