-- atomic: the per-(sale, user) advisory lock, then the one conditional statement that takes the stock and inserts
-- the order; flashsale pipelines these four statements in one round trip.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:sale::text), hashtext(:uid::text));
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity
     WHERE id = :sale AND remaining_inventory >= :quantity AND starts_at <= now() AND now() < ends_at
       AND (SELECT coalesce(sum(quantity), 0) FROM orders
             WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= per_user_limit
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status)
SELECT :uid, id, :quantity, 'CONFIRMED' FROM sale;
COMMIT;
