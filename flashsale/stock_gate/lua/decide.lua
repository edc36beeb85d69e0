-- The stock gate's decision on one order, atomic: a key that already has an order is answered with it (the first
-- decision, whatever the sale is now); then the sale window, the stock and the per-user limit, in the order every
-- strategy checks them (FlashSale.check_order); then the units are taken and the buyer and key recorded.
-- The reference line replays this very script with redis-benchmark (flashsale/load/redis_benchmark.py).
-- KEYS: the sale's state, buyers and keys (flashsale/stock_gate/keys.py).
-- ARGV: now (microseconds since 1970), user, quantity, idempotency key ('' for none), the order's id.
-- Replies: {'admitted', epoch} | {'replayed', order id} | {'not_ready'} | {'sale_not_active'}
--          | {'sold_out', stock left} | {'per_user_limit_exceeded', limit, units held}
local state = redis.call('HMGET', KEYS[1], 'epoch', 'stock', 'limit', 'opens', 'closes')
local epoch = state[1]
if not epoch then
  return {'not_ready'} -- no gate (never built, dropped, or Redis restarted empty): rebuild it from the database
end
local now, quantity, key = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
if key ~= '' then
  local first = redis.call('HGET', KEYS[3], key)
  if first then
    return {'replayed', first}
  end
end
if now < tonumber(state[4]) or now >= tonumber(state[5]) then
  return {'sale_not_active'}
end
local stock = tonumber(state[2])
if stock < quantity then
  return {'sold_out', stock}
end
local limit = tonumber(state[3])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if held + quantity > limit then
  return {'per_user_limit_exceeded', limit, held}
end
redis.call('HINCRBY', KEYS[1], 'stock', -quantity)
redis.call('HINCRBY', KEYS[2], ARGV[2], quantity)
if key ~= '' then
  redis.call('HSET', KEYS[3], key, ARGV[5])
end
return {'admitted', epoch}
