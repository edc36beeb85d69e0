-- Idempotent orders: a client's Idempotency-Key is stored on the order it created, in the same INSERT, so that a
-- committed order always has its key and a key never exists without its order. The unique constraint is what makes
-- a retry (even one racing the original) unable to create a second order: its INSERT fails and its transaction,
-- stock decrement included, rolls back. Keys are visible ASCII, 1 to 255 characters (as Stripe's).
ALTER TABLE orders ADD COLUMN idempotency_key text;
ALTER TABLE orders ADD CONSTRAINT orders_idempotency_key_key UNIQUE (idempotency_key);
ALTER TABLE orders ADD CONSTRAINT orders_idempotency_key_format
    CHECK (idempotency_key ~ '^[\x21-\x7e]{1,255}$');

-- procedure: the same flow, with the key carried into its INSERT (NULL: no key, as the pgbench script calls it).
DROP FUNCTION place_order(uuid, uuid, integer);

CREATE FUNCTION place_order(p_sale uuid, p_user uuid, p_quantity integer, p_idempotency_key text DEFAULT NULL)
RETURNS TABLE (
    outcome         text,
    order_id        uuid,
    created_at      timestamptz,
    remaining       integer,
    bought          integer,
    per_user_limit  integer
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    sale flash_sales%ROWTYPE;
    already integer;
BEGIN
    SELECT * INTO sale FROM flash_sales WHERE id = p_sale FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'sale_not_found', NULL::uuid, NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    IF NOT (sale.starts_at <= now() AND now() < sale.ends_at) THEN
        RETURN QUERY SELECT 'sale_not_active', NULL::uuid, NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    IF sale.remaining_inventory < p_quantity THEN
        RETURN QUERY SELECT 'sold_out', NULL::uuid, NULL::timestamptz, sale.remaining_inventory, NULL::integer,
                            NULL::integer;
        RETURN;
    END IF;
    SELECT coalesce(sum(o.quantity), 0)::integer INTO already
      FROM orders o WHERE o.user_id = p_user AND o.flash_sale_id = p_sale AND o.status = 'CONFIRMED';
    IF already + p_quantity > sale.per_user_limit THEN
        RETURN QUERY SELECT 'per_user_limit_exceeded', NULL::uuid, NULL::timestamptz, NULL::integer, already,
                            sale.per_user_limit;
        RETURN;
    END IF;
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - p_quantity WHERE id = p_sale;
    RETURN QUERY
        INSERT INTO orders AS o (user_id, flash_sale_id, quantity, status, idempotency_key)
        VALUES (p_user, p_sale, p_quantity, 'CONFIRMED', p_idempotency_key)
        RETURNING 'created', o.id, o.created_at, sale.remaining_inventory - p_quantity, already + p_quantity,
                  sale.per_user_limit;
END
$$;
