-- Install a gate rebuilt from the database, whole, in one step: no order is ever decided against part of it. Only
-- by the holder of the rebuild lock (a rebuild whose lock expired may be older than another one), and only over an
-- older epoch. Releases the lock.
-- KEYS: the sale's state, buyers, keys, rebuild lock.
-- ARGV: lock token, epoch, stock, limit, opens (microseconds), closes (microseconds), number of buyers n,
--       then n pairs (user, units held), then pairs (idempotency key, order id).
-- Reply: 1 if installed, 0 if not (lock lost, or a newer gate is in place).
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return 0
end
local installed = redis.call('HGET', KEYS[1], 'epoch')
if installed and tonumber(installed) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[4])
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local keys_from = 8 + 2 * tonumber(ARGV[7])
for i = 8, keys_from - 1, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
for i = keys_from, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'stock', ARGV[3], 'limit', ARGV[4], 'opens', ARGV[5], 'closes', ARGV[6])
redis.call('DEL', KEYS[4])
return 1
