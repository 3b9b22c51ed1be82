"""The named queries of sql/*.sql, shipped as package data (read with importlib.resources)."""
