-- An admitted order whose write surely failed (the database refused it or reported an error: it rolled back) gives
-- its units, the buyer's count and its key back, to the gate that admitted it only: a gate rebuilt since never
-- counted it.
-- KEYS: the sale's state, buyers and keys. ARGV: epoch it was admitted at, user, quantity, key ('' for none), order id.
-- Reply: 1 if given back, 0 if the gate is no longer the one that admitted it.
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
local quantity = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], 'stock', quantity)
if redis.call('HINCRBY', KEYS[2], ARGV[2], -quantity) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[3], ARGV[4]) == ARGV[5] then
  redis.call('HDEL', KEYS[3], ARGV[4])
end
return 1
