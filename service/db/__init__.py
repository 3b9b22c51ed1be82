"""PostgreSQL access: the pool, the SQL files, migrations and the embedded server."""
