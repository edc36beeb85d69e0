-- sharded: take a free shard (SKIP LOCKED, in an order drawn at random: hashed with :spin) and insert the order;
-- if every shard with stock was held, queue on one, as flashsale does. The shards must hold the stock already:
-- run the strategy's prepare_pgbench on the sale first (`flashsale bench pgbench` does), which moves the sale
-- row's units into them as the first order would. The slow path (fragmented stock near the end, refusals) is
-- not replayed.
\set u random(1, :users)
\set spin random(0, 1073741823)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:sale::text), hashtext(:uid::text));
WITH shard AS (
    UPDATE flash_sale_shards SET remaining = remaining - :quantity
     WHERE flash_sale_id = :sale AND remaining >= :quantity AND shard = (
        SELECT s.shard FROM flash_sale_shards s JOIN flash_sales f ON f.id = s.flash_sale_id
         WHERE s.flash_sale_id = :sale AND s.remaining >= :quantity
           AND f.starts_at <= now() AND now() < f.ends_at
           AND (SELECT coalesce(sum(quantity), 0) FROM orders
                 WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= f.per_user_limit
         ORDER BY hashint4(s.shard + :spin) LIMIT 1 FOR UPDATE OF s SKIP LOCKED)
    RETURNING flash_sale_id
), placed AS (
    INSERT INTO orders (user_id, flash_sale_id, quantity, status)
    SELECT :uid, flash_sale_id, :quantity, 'CONFIRMED' FROM shard
    RETURNING 1
)
SELECT count(*) AS took FROM placed \gset
COMMIT;
\if :took = 0
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:sale::text), hashtext(:uid::text));
WITH shard AS (
    UPDATE flash_sale_shards SET remaining = remaining - :quantity
     WHERE flash_sale_id = :sale AND remaining >= :quantity AND shard = (
        SELECT s.shard FROM flash_sale_shards s JOIN flash_sales f ON f.id = s.flash_sale_id
         WHERE s.flash_sale_id = :sale AND s.remaining >= :quantity
           AND f.starts_at <= now() AND now() < f.ends_at
           AND (SELECT coalesce(sum(quantity), 0) FROM orders
                 WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= f.per_user_limit
         ORDER BY hashint4(s.shard + :spin) LIMIT 1)
    RETURNING flash_sale_id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status)
SELECT :uid, flash_sale_id, :quantity, 'CONFIRMED' FROM shard;
COMMIT;
\endif
