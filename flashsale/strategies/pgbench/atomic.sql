-- atomic, as the driver sends it (strategies/atomic.py): one pipeline, one round trip, holding BEGIN, the per-(sale,
-- user) advisory lock of repositories/locks.py, the conditional statement of repositories/placements.py
-- (_TAKE_STOCK) and COMMIT. The user's id is looked up before the pipeline (the driver knows it already).
-- Where it differs: now() stands for the clock the driver sends as a parameter, NULL for its idempotency key;
-- a refusal (an empty result) is not explained by a follow-up read and not tried again.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
\startpipeline
BEGIN;
SELECT pg_advisory_xact_lock(hashtext(:sale::text), hashtext(:uid::text));
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - :quantity
     WHERE id = :sale AND remaining_inventory >= :quantity AND starts_at <= now() AND now() < ends_at
       AND (SELECT coalesce(sum(quantity), 0) FROM orders
             WHERE user_id = :uid AND flash_sale_id = :sale AND status = 'CONFIRMED') + :quantity <= per_user_limit
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT :uid, id, :quantity, 'CONFIRMED', NULL FROM sale
RETURNING id, user_id, flash_sale_id, quantity, status, created_at;
COMMIT;
\endpipeline
