-- unsafe: read without a lock, check with \if, write back the value computed from the read (a lost update).
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (now() >= starts_at AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
\set left :remaining - :quantity
BEGIN;
UPDATE flash_sales SET remaining_inventory = :left WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (:uid, :sale, :quantity, 'CONFIRMED');
COMMIT;
\endif
