"""The schema migrations NNNN_name.sql, shipped as package data (read with importlib.resources)."""
