-- Drop the gate built at an epoch (the database refused an order it admitted, or an admitted order's write ended
-- without telling whether it committed), so that the next order rebuilds it from the database. A gate rebuilt since
-- is left alone.
-- KEYS: the sale's state, buyers and keys. ARGV: the epoch.
-- Reply: 1 if dropped, 0 if the gate is not at that epoch.
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
