-- pessimistic: the same statements flashsale sends, with the same checks made by pgbench's \if.
\set u random(1, :users)
BEGIN;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (now() >= starts_at AND now() < ends_at)::int AS active
  FROM flash_sales WHERE id = :sale FOR UPDATE \gset
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT coalesce(sum(quantity), 0)::int AS bought FROM orders
 WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED' \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (:uid, :sale, :quantity, 'CONFIRMED');
\endif
COMMIT;
