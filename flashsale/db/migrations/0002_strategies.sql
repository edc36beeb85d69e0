-- What the locking strategies beyond the seed's need: a version for optimistic locking, inventory shards,
-- and the pessimistic flow as one server-side function.

-- optimistic: the version moves on with every change of the row, whoever makes it (a trigger, so that no strategy
-- can forget it); an optimistic write only applies if the version is still the one it read.
ALTER TABLE flash_sales ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION flash_sales_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER flash_sales_version BEFORE UPDATE ON flash_sales
    FOR EACH ROW EXECUTE FUNCTION flash_sales_next_version();

-- sharded: the sale's inventory spread over K rows so that K orders can hold a row lock at once.
-- The shards start empty; the `sharded` strategy moves the sale row's remaining units into them on first use.
-- A sale's remaining inventory is therefore always flash_sales.remaining_inventory + sum(shards.remaining).
CREATE TABLE flash_sale_shards (
    flash_sale_id  uuid NOT NULL REFERENCES flash_sales (id),
    shard          integer NOT NULL CHECK (shard >= 0),
    remaining      integer NOT NULL DEFAULT 0 CHECK (remaining >= 0),
    PRIMARY KEY (flash_sale_id, shard)
);

-- procedure: the pessimistic flow in one round trip. The sale row lock is taken, used and (at the end of the
-- caller's statement) released without ever waiting on the client. Refusals are returned, not raised, so that the
-- caller's connection needs no rollback; an unknown user still raises foreign_key_violation from the INSERT.
CREATE FUNCTION place_order(p_sale uuid, p_user uuid, p_quantity integer)
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
        INSERT INTO orders AS o (user_id, flash_sale_id, quantity, status)
        VALUES (p_user, p_sale, p_quantity, 'CONFIRMED')
        RETURNING 'created', o.id, o.created_at, sale.remaining_inventory - p_quantity, already + p_quantity,
                  sale.per_user_limit;
END
$$;
