"""Operators' read-only questions: the `ops` views in psql, `payments ops` on the command line."""

from service.ops.cli import ops_group

__all__ = ["ops_group"]
