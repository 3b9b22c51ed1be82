"""The rows of an import file, checked with the domain rules the service applies.

Invalid rows and later rows for an order already in the file are never sent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from service.domain.errors import InvalidPayment
from service.domain.rules import CURRENCY, MAX_ORDER_ID, payment_amount
from service.importer.formats import FIELDS, Record, read_records

KEY_PREFIX = "import-"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Payment:
    """What one valid row asks the service for."""

    order_id: int
    amount: int
    currency: str = CURRENCY

    def body(self) -> bytes:
        """The request body; always the same bytes for the same row (idempotent replays)."""
        return msgspec.json.encode(
            {"order_id": self.order_id, "amount": self.amount, "currency": self.currency}
        )

    def idempotency_key(self) -> str:
        """Derived from the row, so a rerun of the file replays instead of paying again."""
        seed = f"{self.order_id}:{self.amount}:{self.currency}".encode()
        return KEY_PREFIX + hashlib.sha256(seed).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    order_id: str  # as written in the file (for the report)
    amount: str
    payment: Payment | None = None  # set when the row is valid
    problem: str = ""  # why it is invalid
    first_line: int = 0  # > 0: a duplicate of the row on that line

    @property
    def sendable(self) -> bool:
        return self.payment is not None and not self.first_line


def read_rows(path: Path) -> list[Row]:
    """Every data row of the file in order, each valid, invalid or a duplicate in the file."""
    _, records = read_records(path)
    rows: list[Row] = []
    first_lines: dict[int, int] = {}
    for record in records:
        row = check(record)
        if row.payment is not None:
            first = first_lines.setdefault(row.payment.order_id, row.line)
            if first != row.line:
                row = Row(row.line, row.order_id, row.amount, row.payment, first_line=first)
        rows.append(row)
    return rows


def check(record: Record) -> Row:
    fields = record.fields
    shown = {name: _shown(fields.get(name)) for name in FIELDS}
    invalid = _problem(record)
    if invalid:
        return Row(record.line, shown["order_id"], shown["amount"], problem=invalid)
    try:
        order_id = _order_id(fields["order_id"], record.text)
        amount = _number(fields["amount"]) if record.text else fields["amount"]
        exact = payment_amount(amount, fields.get("currency", CURRENCY))
    except InvalidPayment as exc:
        return Row(record.line, shown["order_id"], shown["amount"], problem=exc.detail)
    payment = Payment(order_id, int(exact))
    return Row(record.line, str(order_id), str(payment.amount), payment)


def _problem(record: Record) -> str:
    if record.problem:
        return record.problem
    if unknown := sorted(set(record.fields) - set(FIELDS)):
        return f"unknown field(s): {', '.join(unknown)}"
    for name in ("order_id", "amount"):
        if record.fields.get(name) is None:
            return f"{name} is missing"
    return ""


def _order_id(value: Any, text: bool) -> int:
    if text and isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayment(f"order_id must be an integer, not {_shown(value)}")
    if not 1 <= value <= MAX_ORDER_ID:
        raise InvalidPayment(f"order_id must be between 1 and {MAX_ORDER_ID}, not {value}")
    return value


def _number(value: str) -> int | float:
    """A CSV cell as the number it writes (JSON values go to the domain rule as they are)."""
    if not _NUMBER.fullmatch(value):
        raise InvalidPayment(f"amount must be a number, not {value!r}")
    try:
        exact = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise InvalidPayment(f"amount must be a number, not {value!r}") from exc
    if exact.adjusted() > 30:  # far out of range: no giant int for "1e999999"
        return float(exact)
    if exact == exact.to_integral_value():
        return int(exact)
    if float(exact).is_integer():  # "100.0000000000000001": not whole, though a float says so
        raise InvalidPayment(f"amount must be a whole number of yen, not {value}")
    return float(exact)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
