-- pessimistic_nowait: the seed's statements with a lock that never queues. pgbench ends a client on any error
-- other than a serialization failure or deadlock, so FOR UPDATE NOWAIT is played by FOR UPDATE SKIP LOCKED,
-- which on a single row fails the same way without an error (got = 0). A failed attempt is a pgbench
-- transaction that sells nothing; pgbench does not back off and retry as flashsale does.
\set u random(1, :users)
BEGIN;
SELECT count(*) AS got, coalesce(max(remaining_inventory), 0) AS remaining, coalesce(max(per_user_limit), 0) AS lim,
       coalesce(max((now() >= starts_at AND now() < ends_at)::int), 0) AS active
  FROM (SELECT remaining_inventory, per_user_limit, starts_at, ends_at
          FROM flash_sales WHERE id = :sale FOR UPDATE SKIP LOCKED) AS locked \gset
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT coalesce(sum(quantity), 0)::int AS bought FROM orders
 WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED' \gset
\if :got = 1 and :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (:uid, :sale, :quantity, 'CONFIRMED');
\endif
COMMIT;
