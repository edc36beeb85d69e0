-- procedure, as the driver sends it (repositories/placements.py, call_place_order): one call of the place_order
-- function (migrations 0002 to 0004), which commits on its own; one round trip. The user's id is looked up before.
-- The pipeline changes nothing on the wire (one statement, one sync, as the driver's autocommit call); it keeps the
-- shape of the other scripts that decide in SQL.
-- Where it differs: now() stands for the clock the driver sends as a parameter, NULL for its idempotency key.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
\startpipeline
SELECT outcome, order_id, created_at, remaining, bought, per_user_limit
  FROM place_order(:sale, :uid, :quantity, NULL, now());
\endpipeline
