-- Asynchronous orders are refused at acceptance when their sale is not open, from a cache of each sale's window
-- (flashsale.services.sale_windows): this tells every cache, on the channel flash_sale_window, which sale's window
-- has changed. Only statements that set starts_at or ends_at fire it: the strategies' stock updates do not.
CREATE FUNCTION notify_sale_window() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flash_sale_window', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER flash_sale_window_changed AFTER UPDATE OF starts_at, ends_at ON flash_sales
    FOR EACH ROW WHEN (OLD.starts_at IS DISTINCT FROM NEW.starts_at OR OLD.ends_at IS DISTINCT FROM NEW.ends_at)
    EXECUTE FUNCTION notify_sale_window();
