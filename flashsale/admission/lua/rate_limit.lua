-- One order of one user against the per-user rate, shared by every server process: GCRA (the generic cell rate
-- algorithm), the token bucket written as one timestamp. The key holds the user's theoretical arrival time (TAT,
-- microseconds on the Redis server's own clock, so that every process reads the same time): an order is admitted if
-- it arrives no earlier than TAT - burst * interval + interval, and then pushes TAT one interval on. A user idle for
-- burst intervals has a full bucket again; the key expires then.
-- KEYS: the user's key. ARGV: interval between orders (microseconds), burst (orders).
-- Reply: 0 if admitted, else the microseconds until the user's next order would be.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local allowed_at = tat + interval - burst * interval
if now < allowed_at then
  return allowed_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0
