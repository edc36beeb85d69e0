"""Migrations are ordered SQL files inside the package, applied once and recorded."""

from flashsale.db import connection, migrate


def test_migrations_are_ordered_and_shipped_in_the_package():
    versions = [m.version for m in migrate.available()]
    assert versions == sorted(versions)
    assert versions[0] == "0001_schema"


def test_applying_twice_changes_nothing(database_url):
    with connection.connect(database_url) as conn:
        assert migrate.migrate(conn) == []  # the session fixture already applied them
        assert migrate.applied(conn) == [m.version for m in migrate.available()]


def test_schema_has_the_seed_tables_and_index(database_url):
    with connection.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"users", "products", "flash_sales", "orders", "schema_migrations"} <= tables
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_user_id_flash_sale_id_idx'"
        ).fetchone()[0]
        assert "(user_id, flash_sale_id)" in index
        checks = {
            r[0]
            for r in conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'flash_sales'::regclass"
            )
        }
        assert any("remaining_inventory >= 0" in c and "remaining_inventory <= total_inventory" in c for c in checks)
        assert any("ends_at > starts_at" in c for c in checks)
        assert any("per_user_limit > 0" in c for c in checks)
