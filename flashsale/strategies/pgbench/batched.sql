-- batched, as close to the worker (strategies/batched.py, _settle_sale) as pgbench allows: one pgbench transaction
-- settles one batch of :batch orders (pgbench -D batch=B). The worker sends two round trips: BEGIN, the locking
-- read and the read of the batch's users' units; then one inventory UPDATE, one multi-row INSERT and COMMIT.
-- pgbench has no arrays, so a batch is :batch distinct users with consecutive numbers, whose ids are looked up
-- before BEGIN into one array literal (:uids) that the statements take as the worker's array parameter.
-- Orders per second = pgbench TPS * :batch; run it with as many clients as workers (1).
-- Where it differs: pgbench cannot \gset inside a pipeline, so BEGIN goes alone, one round trip before the lock,
-- and the users' units are read by the UPDATE and the INSERT (under the lock, which take nothing when one user
-- would pass the limit) instead of in the first round trip; the batch is accepted whole or not at all where the
-- worker judges each order; ids come from gen_random_uuid() where the worker makes them; the window is checked
-- with now() where the worker uses its clock. Idempotency keys (none here) are not read.
\set u random(1, :users - :batch + 1)
\set last :u + :batch - 1
\set units :batch * :quantity
SELECT array_agg(id)::text AS uids FROM users WHERE number BETWEEN :u AND :last \gset
BEGIN;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (starts_at <= now() AND now() < ends_at)::int AS active
  FROM flash_sales WHERE id = :sale FOR UPDATE \gset
\if :active = 1 and :remaining >= :units
\startpipeline
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :units WHERE id = :sale
   AND (SELECT coalesce(max(bought), 0) FROM (
        SELECT (SELECT coalesce(sum(o.quantity), 0)::int FROM orders o
                 WHERE o.user_id = u.id AND o.flash_sale_id = :sale AND o.status = 'CONFIRMED') AS bought
          FROM users u WHERE u.id = ANY(:uids::uuid[])) AS holdings) + :quantity <= :lim;
INSERT INTO orders (id, user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT gen_random_uuid(), user_id, :sale, :quantity, 'CONFIRMED', NULL FROM unnest(:uids::uuid[]) AS batch (user_id)
 WHERE (SELECT coalesce(max(bought), 0) FROM (
        SELECT (SELECT coalesce(sum(o.quantity), 0)::int FROM orders o
                 WHERE o.user_id = u.id AND o.flash_sale_id = :sale AND o.status = 'CONFIRMED') AS bought
          FROM users u WHERE u.id = ANY(:uids::uuid[])) AS holdings) + :quantity <= :lim
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
\else
COMMIT;
\endif
