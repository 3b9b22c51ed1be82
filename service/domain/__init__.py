"""Business rules of the design, as plain Python: no I/O, tested without a database."""
