-- sharded, as the driver sends it (strategies/sharded.py) as far as pgbench allows: one pipeline, one round trip,
-- holding BEGIN, the advisory lock of repositories/locks.py, one statement that takes a shard and inserts the order,
-- and COMMIT. The user's id is looked up before the pipeline. The shards must hold the stock already: run the
-- strategy's prepare_pgbench on the sale first (`flashsale bench pgbench` does).
-- Where it differs: the driver sends the free-shard statement (SKIP LOCKED) and, only when every shard with stock
-- was held, a second pipeline that queues on one; pgbench cannot read a pipeline's answer (no \gset in a
-- pipeline), so the statement here picks its shard as coalesce(the free one, SKIP LOCKED; any one, unlocked, on
-- which the UPDATE then queues): the same choice, in one round trip instead of two when every shard is held. The
-- slow path (first orders, fragmented stock, refusals) is not replayed; now() stands for the driver's clock.
\set u random(1, :users)
\set spin random(0, 1073741823)
SELECT id AS uid FROM users WHERE number = :u \gset
\startpipeline
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:sale::text), hashtext(:uid::text));
WITH shard AS (
    UPDATE flash_sale_shards SET remaining = remaining - :quantity
     WHERE flash_sale_id = :sale AND remaining >= :quantity AND shard = coalesce((
        SELECT s.shard FROM flash_sale_shards s JOIN flash_sales f ON f.id = s.flash_sale_id
         WHERE s.flash_sale_id = :sale AND s.remaining >= :quantity
           AND f.starts_at <= now() AND now() < f.ends_at
           AND (SELECT coalesce(sum(quantity), 0) FROM orders
             WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= f.per_user_limit
         ORDER BY hashint4(s.shard + :spin) LIMIT 1 FOR UPDATE OF s SKIP LOCKED), (
        SELECT s.shard FROM flash_sale_shards s JOIN flash_sales f ON f.id = s.flash_sale_id
         WHERE s.flash_sale_id = :sale AND s.remaining >= :quantity
           AND f.starts_at <= now() AND now() < f.ends_at
           AND (SELECT coalesce(sum(quantity), 0) FROM orders
             WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= f.per_user_limit
         ORDER BY hashint4(s.shard + :spin) LIMIT 1))
    RETURNING flash_sale_id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT :uid, flash_sale_id, :quantity, 'CONFIRMED', NULL FROM shard
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
