-- serializable: the seed's flow without FOR UPDATE at SERIALIZABLE isolation. Run pgbench with --max-tries so
-- that serialization failures are retried (as flashsale does) instead of ending the client.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN;
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (now() >= starts_at AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (:uid, :sale, :quantity, 'CONFIRMED');
\endif
COMMIT;
