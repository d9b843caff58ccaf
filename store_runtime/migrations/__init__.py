"""Alembic migrations of the store runtime's database, run by `store_runtime.db.open_database`."""
