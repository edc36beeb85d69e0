-- serializable, as close to the driver (strategies/serializable.py) as pgbench allows. The driver sends two round
-- trips: BEGIN ISOLATION LEVEL SERIALIZABLE with the read of repositories/flash_sales.py (read_for_order); then the
-- UPDATE, the INSERT and COMMIT. Run pgbench with --max-tries (the plan does) so that serialization failures are
-- retried, as the driver does, instead of ending the client. The user's id is looked up before BEGIN.
-- Where it differs: pgbench cannot \gset inside a pipeline, so BEGIN goes alone, one round trip before the read;
-- pgbench retries at once where the driver backs off; the read names only the columns the checks need, and the
-- window is checked with now() where the driver uses its clock.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (starts_at <= now() AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
\startpipeline
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
VALUES (:uid, :sale, :quantity, 'CONFIRMED', NULL)
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
\else
COMMIT;
\endif
