-- Asynchronous orders (serve --accept async, the original's phase 4): an accepted order is stored PENDING at once
-- (with its idempotency key, so that a retry finds it) and settled later by a worker, through the strategy, into
-- CONFIRMED or FAILED. The statuses exist since 0001; what a FAILED order needs is the reason it was refused (the
-- domain error's code, e.g. sold_out), and only a FAILED order has one.
ALTER TABLE orders ADD COLUMN failure_reason text;
ALTER TABLE orders ADD CONSTRAINT orders_failure_reason_when_failed
    CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL));

-- The settlement workers' sweep looks for the orders still pending, oldest first: few rows, often read.
CREATE INDEX orders_pending_idx ON orders (created_at) WHERE status = 'PENDING';
