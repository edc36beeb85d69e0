-- procedure: one call of the place_order function (migration 0002), which commits on its own.
\set u random(1, :users)
SELECT id AS uid FROM users WHERE number = :u \gset
SELECT outcome FROM place_order(:sale, :uid, :quantity);
