-- batched: one pgbench transaction settles one batch of :batch orders (pgbench -D batch=B), as the worker does:
-- lock the sale row, read the batch's users' units, one inventory UPDATE, one multi-row INSERT, COMMIT.
-- pgbench has no arrays, so a batch is :batch distinct users with consecutive numbers; the \if accepts the whole
-- batch or none of it. Orders per second = pgbench TPS * :batch; run it with as many clients as workers (1).
\set u random(1, :users - :batch + 1)
\set last :u + :batch - 1
\set units :batch * :quantity
BEGIN;
SELECT remaining_inventory AS remaining, per_user_limit AS lim,
       (now() >= starts_at AND now() < ends_at)::int AS active
  FROM flash_sales WHERE id = :sale FOR UPDATE \gset
SELECT coalesce(max(bought), 0) AS most FROM (
    SELECT u.id, coalesce(sum(o.quantity), 0)::int AS bought FROM users u
      LEFT JOIN orders o ON o.user_id = u.id AND o.flash_sale_id = :sale AND o.status = 'CONFIRMED'
     WHERE u.number BETWEEN :u AND :last GROUP BY u.id) AS holdings \gset
\if :active = 1 and :remaining >= :units and :most + :quantity <= :lim
UPDATE flash_sales SET remaining_inventory = remaining_inventory - :units WHERE id = :sale;
INSERT INTO orders (id, user_id, flash_sale_id, quantity, status)
SELECT gen_random_uuid(), id, :sale, :quantity, 'CONFIRMED' FROM users WHERE number BETWEEN :u AND :last;
\endif
COMMIT;
