"""Reading an import file: CSV with a header, or JSON lines; detected by extension or content."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

FIELDS = ("order_id", "amount", "currency")
REQUIRED = ("order_id", "amount")
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson"}


class FileFormatError(Exception):
    """The file as a whole cannot be read (no header, unknown columns, a JSON array...)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One data row as written: its line number and fields, or why it is not a row at all."""

    line: int
    fields: dict[str, Any]
    problem: str | None = None
    text: bool = False  # values are text to parse (CSV), not JSON values


def detect_format(path: Path, text: str) -> str:
    """The format, "csv" or "jsonl": by extension, else by the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in JSON_LINES_SUFFIXES:
        return "jsonl"
    return "jsonl" if text.lstrip()[:1] in ("{", "[") else "csv"


def read_records(path: Path) -> tuple[str, list[Record]]:
    """The file's format and its data rows, in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    kind = detect_format(path, text)
    records = list(json_lines_records(text) if kind == "jsonl" else csv_records(text))
    return kind, records


def csv_records(text: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if header is None:
            header = _header(cells)
            continue
        if len(cells) != len(header):
            yield Record(reader.line_num, {}, f"expected {len(header)} fields, found {len(cells)}")
            continue
        fields = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        yield Record(reader.line_num, {k: v for k, v in fields.items() if v != ""}, text=True)
    if header is None:
        raise FileFormatError("the file is empty: a CSV import needs the header order_id,amount")


def _header(cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    unknown = [name for name in names if name not in FIELDS]
    if unknown or len(set(names)) != len(names):
        raise FileFormatError(
            f"CSV header must be order_id,amount[,currency] (any order), not {','.join(cells)}"
        )
    if missing := [name for name in REQUIRED if name not in names]:
        raise FileFormatError(f"CSV header lacks {', '.join(missing)}: {','.join(cells)}")
    return names


def json_lines_records(text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            if number == 1 and line.lstrip().startswith("["):
                raise FileFormatError("a JSON array: write one JSON object per line") from exc
            yield Record(number, {}, f"not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            if number == 1 and isinstance(value, list):
                raise FileFormatError("a JSON array: write one JSON object per line")
            yield Record(number, {}, "not a JSON object")
            continue
        yield Record(number, value)
