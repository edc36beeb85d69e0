-- Release the rebuild lock if this rebuild still holds it (its token), after a rebuild that installed nothing.
-- KEYS: the rebuild lock. ARGV: the token. Reply: 1 if released, 0 if another rebuild holds it (or nobody).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
