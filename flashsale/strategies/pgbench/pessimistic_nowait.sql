-- pessimistic_nowait, as close to the driver (strategies/pessimistic_nowait.py) as pgbench allows: the statements
-- and round trips of pessimistic.sql (see there where they differ from the driver's), with a lock that never queues.
-- Where it differs besides: pgbench ends a client on any error other than a serialization failure or deadlock, so
-- FOR UPDATE NOWAIT is played by FOR UPDATE SKIP LOCKED, which on a single row fails the same way without an error
-- (got = 0). A failed attempt is a pgbench transaction that sells nothing: pgbench neither backs off nor retries.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN;
SELECT count(*) AS got, coalesce(max(remaining_inventory), 0) AS remaining, coalesce(max(per_user_limit), 0) AS lim,
       coalesce(max((starts_at <= now() AND now() < ends_at)::int), 0) AS active
  FROM (SELECT remaining_inventory, per_user_limit, starts_at, ends_at
          FROM flash_sales WHERE id = :sale FOR UPDATE SKIP LOCKED) AS locked \gset
\if :got = 1 and :active = 1 and :remaining >= :quantity
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
