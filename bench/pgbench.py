"""The limit: pgbench running exactly the SQL the service issues for one payment.

The statements come from sql/payments.sql through aiosql's "sqlite3" driver, which keeps
the `:name` placeholders as written. Each one becomes a pgbench variable: order_id and amount
are drawn per payment with `\\set`, currency/status/request_id are given with `-D`, and
settle_payment's payment_id is the id that insert_processing returned (`\\gset`). With
`-M prepared` every variable is a bound parameter of a prepared statement, as with asyncpg.
Each statement is its own autocommit transaction, as in the service; a pgbench
"transaction" (one run of the script) is one payment.
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiosql

from service.db.embedded import bin_dir
from service.db.sql import SQL_DIR

PAYMENTS_SQL = SQL_DIR / "payments.sql"
# A placeholder, not a `::type` cast.
PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# aiosql parameter -> pgbench variable, per statement.
INSERT_VARIABLES = {"order_id": "order_id", "amount": "amount", "currency": "currency"}
SETTLE_VARIABLES = {"payment_id": "p_id", "status": "status", "request_id": "request_id"}
ORDER_ID_RANGE = 10**12  # random order ids; a collision in a run is vanishingly rare


def _substitute(sql: str, parameters: list[str], variables: dict[str, str]) -> str:
    found = set(PLACEHOLDER.findall(sql))
    if found != set(parameters) or found != set(variables):
        raise ValueError(f"placeholders {sorted(found)} do not match {sorted(variables)}")
    return PLACEHOLDER.sub(lambda match: ":" + variables[match.group(1)], sql)


def payment_script() -> str:
    """The pgbench script of one payment: insert PROCESSING, then settle with its outbox row."""
    queries = aiosql.from_path(PAYMENTS_SQL, "sqlite3")
    insert = queries.insert_processing
    settle = queries.settle_payment
    insert_sql = _substitute(insert.sql, list(insert.parameters), INSERT_VARIABLES).strip()
    settle_sql = _substitute(settle.sql, list(settle.parameters), SETTLE_VARIABLES).strip()
    # \gset ends the query in place of its semicolon and stores the row as :p_<column>.
    insert_sql = insert_sql.removesuffix(";").rstrip() + " \\gset p_"
    if not settle_sql.endswith(";"):
        settle_sql += ";"
    return "\n".join(
        [
            f"\\set order_id random(1, {ORDER_ID_RANGE})",
            "\\set amount random(100, 1000000)",
            "-- insert_processing (sql/payments.sql)",
            insert_sql,
            "-- settle_payment (sql/payments.sql)",
            settle_sql,
            "",
        ]
    )


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    concurrency: int
    threads: int
    duration_s: float
    payments_per_s: float
    payments: int
    failed: int
    latency_avg_ms: float | None
    client_cpu_s: float  # pgbench's own CPU time
    exit_code: int
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "threads": self.threads,
            "duration_s": self.duration_s,
            "payments_per_s": round(self.payments_per_s, 1),
            "payments": self.payments,
            "failed": self.failed,
            "latency_avg_ms": self.latency_avg_ms,
            "pgbench_cpu_s": round(self.client_cpu_s, 3),
            "exit_code": self.exit_code,
            "error": self.error,
        }


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_output(text: str) -> tuple[float, int, int, float | None]:
    """TPS (without connection time), transactions processed, failed, average latency."""
    tps = _number(r"tps = ([\d.]+) \(without initial connection time\)", text) or 0.0
    processed = _number(r"number of transactions actually processed: (\d+)", text) or 0
    failed = _number(r"number of failed transactions: (\d+)", text) or 0
    latency = _number(r"latency average = ([\d.]+) ms", text)
    return tps, int(processed), int(failed), latency


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_pgbench(
    url: str, script: Path, concurrency: int, duration: float, threads: int = 2
) -> PgbenchResult:
    threads = max(1, min(threads, concurrency))
    argv = [
        str(bin_dir() / "pgbench"),
        "--no-vacuum",
        "--protocol=prepared",
        f"--client={concurrency}",
        f"--jobs={threads}",
        f"--time={max(1, round(duration))}",
        f"--file={script}",
        "--define=currency=JPY",
        "--define=status=COMPLETED",
        f"--define=request_id={uuid.uuid4().hex}",
        url,
    ]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), duration + 120)
    elapsed = time.perf_counter() - started
    output = stdout.decode(errors="replace") + stderr.decode(errors="replace")
    tps, processed, failed, latency = parse_output(output)
    code = process.returncode if process.returncode is not None else -1
    error_lines = [line for line in output.splitlines() if "error" in line.lower()]
    return PgbenchResult(
        concurrency=concurrency,
        threads=threads,
        duration_s=round(elapsed, 3),
        payments_per_s=tps,
        payments=processed,
        failed=failed,
        latency_avg_ms=latency,
        client_cpu_s=_children_cpu() - cpu_before,
        exit_code=code,
        error="\n".join(error_lines[:5]) if code != 0 or tps == 0 else None,
    )
