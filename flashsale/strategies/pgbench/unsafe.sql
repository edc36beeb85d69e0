-- unsafe, as the driver sends it (strategies/unsafe.py): the unlocked autocommit read of repositories/flash_sales.py
-- (read_for_order), the checks (pgbench's \if), then one pipeline, one round trip, holding BEGIN, the blind write
-- of the value computed from the read (a lost update) and the INSERT, and COMMIT. The user's id is looked up before.
-- Where it differs: the read names only the columns the checks need, and the window is checked with now() where
-- the driver uses its clock.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (starts_at <= now() AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
\set left :remaining - :quantity
\startpipeline
BEGIN;
UPDATE flash_sales SET remaining_inventory = :left WHERE id = :sale;
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
VALUES (:uid, :sale, :quantity, 'CONFIRMED', NULL)
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
\endif
