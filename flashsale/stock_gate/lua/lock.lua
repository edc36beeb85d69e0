-- Take the rebuild lock of a sale whose gate is missing, in one step with the check: an order that found no gate
-- must not rebuild one that another order has installed since (a new epoch would fence off the orders it admitted).
-- KEYS: the sale's state, rebuild lock. ARGV: token, expiry (milliseconds), '1' to take it even if the gate is built.
-- Reply: 'locked' (the caller rebuilds, then installs or unlocks), 'built' (nothing to do), 'busy' (another rebuild).
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 'built'
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 'locked'
end
return 'busy'
