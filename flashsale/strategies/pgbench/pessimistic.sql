-- pessimistic, as close to the driver (strategies/pessimistic.py) as pgbench allows. The driver sends two round
-- trips: BEGIN, the locking read and the read of the user's units; then the UPDATE, the INSERT and COMMIT. The row
-- stays locked across its check and the second round trip. The user's id is looked up here before BEGIN.
-- Where it differs: pgbench cannot \gset inside a pipeline, so
--   * BEGIN goes alone, one round trip before the lock (so the lock is held no longer for it);
--   * the user's units are not read in the first round trip but by the UPDATE and the INSERT, under the lock, which
--     take nothing when the limit would be passed. Reading them in the locking SELECT instead would be wrong: a
--     sub-select of that statement sees the orders as of the statement's start, before it waited for the lock, so
--     it misses the order the lock holder just committed for the same user (the limit is then passed);
--   * the window is checked with now() where the driver uses its clock; the locking read names only the columns the
--     checks need.
-- The lock is held, as in the driver, from the locking read across pgbench's \if and one round trip to COMMIT.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (starts_at <= now() AND now() < ends_at)::int AS active
  FROM flash_sales WHERE id = :sale FOR UPDATE \gset
\if :active = 1 and :remaining >= :quantity
\startpipeline
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity WHERE id = :sale
   AND (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= :lim;
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT :uid, :sale, :quantity, 'CONFIRMED', NULL
 WHERE (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= :lim
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
\else
COMMIT;
\endif
