-- optimistic, as the driver sends one attempt (strategies/optimistic.py): two autocommit statements, two round
-- trips. The unlocked read of repositories/flash_sales.py (read_for_order: the sale, its version and the user's
-- units from one snapshot), the checks (pgbench's \if), then the write of repositories/placements.py
-- (_TAKE_VERSION) that applies only at the version read. The user's id is looked up before.
-- Where it differs: a version conflict is a pgbench transaction that sells nothing, where the driver backs off
-- and tries again (up to 16 times); the read names only the columns the checks need, and the window is checked
-- with now() where the driver uses its clock.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT remaining_inventory AS remaining, per_user_limit AS lim, version,
       (starts_at <= now() AND now() < ends_at)::int AS active,
       (SELECT coalesce(sum(quantity), 0)::int FROM orders
         WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') AS bought
  FROM flash_sales WHERE id = :sale \gset
\if :active = 1 and :remaining >= :quantity and :bought + :quantity <= :lim
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity
     WHERE id = :sale AND version = :version
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT :uid, id, :quantity, 'CONFIRMED', NULL FROM sale
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
\endif
