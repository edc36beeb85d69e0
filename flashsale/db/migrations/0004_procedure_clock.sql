-- procedure: the sale window is checked against p_now, the strategy's clock (as every other strategy checks it), so
-- that a test can place an order at another time; without it (the pgbench script) against the database's now().
DROP FUNCTION place_order(uuid, uuid, integer, text);

CREATE FUNCTION place_order(
    p_sale uuid, p_user uuid, p_quantity integer, p_idempotency_key text DEFAULT NULL, p_now timestamptz DEFAULT now()
)
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
    IF NOT (sale.starts_at <= p_now AND p_now < sale.ends_at) THEN
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
