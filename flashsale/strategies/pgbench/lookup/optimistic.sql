-- optimistic: the unlocked read (sale, version, the user's units), the checks as pgbench \if, then the write that
-- only applies at the version read. A conflict is a pgbench transaction that sells nothing (no retry).
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT remaining_inventory AS remaining, per_user_limit AS lim, version,
       (now() >= starts_at AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity  -- the trigger bumps version
     WHERE id = :sale AND version = :version
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status)
SELECT :uid, id, :quantity, 'CONFIRMED' FROM sale;
\endif
