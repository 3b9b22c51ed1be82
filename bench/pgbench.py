"""The limit: pgbench running exactly the SQL the service issues for one payment.

`insert_processing` and `settle_payment` are read from sql/payments.sql with aiosql's "sqlite3"
driver, which keeps the `:name` placeholders, each turned into a pgbench variable (settle's
payment_id is the id insert returned, by `\\gset`). `-M prepared` binds them as asyncpg does;
each statement is its own autocommit transaction, as in the service; one script run, one payment.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiosql

from service.db.embedded import bin_dir
from service.db.sql import SQL_DIR

PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # `:name`, not a `::type` cast
INSERT = {"order_id": "order_id", "amount": "amount", "currency": "currency"}
SETTLE = {name: name for name in ("status", "from_statuses", "request_id")} | {"payment_id": "p_id"}
# from_statuses as a text[] literal: the compare-and-set's sources of COMPLETED.
DEFINES = ["--define=currency=JPY", "--define=status=COMPLETED", "--define=request_id=bench"]
DEFINES += ["--define=from_statuses={PROCESSING}"]


def statement(query: aiosql.types.QueryFn, variables: dict[str, str]) -> str:
    if not set(PLACEHOLDER.findall(query.sql)) == set(query.parameters or ()) == set(variables):
        raise ValueError(f"{query.__name__} no longer takes {sorted(variables)}: update bench")
    return PLACEHOLDER.sub(lambda m: ":" + variables[m[1]], query.sql).strip().removesuffix(";")


def payment_script() -> str:
    queries = aiosql.from_path(SQL_DIR / "payments.sql", "sqlite3")
    insert = statement(queries.insert_processing, INSERT)
    settle = statement(queries.settle_payment, SETTLE)
    return (
        "\\set order_id random(1, 1000000000000)\n\\set amount random(100, 1000000)\n"
        f"{insert} \\gset p_\n{settle};\n"
    )


async def pgbench(url: str, script: Path, concurrency: int, seconds: int) -> float:
    """Payments per second (tps without connection time); raises if any failed."""
    argv = [str(bin_dir() / "pgbench"), "--no-vacuum", "--protocol=prepared", f"--file={script}"]
    argv += [f"--client={concurrency}", "--jobs=2", f"--time={max(1, seconds)}", *DEFINES, url]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output = (await asyncio.wait_for(process.communicate(), seconds + 60))[0].decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    if process.returncode != 0 or not tps or "failed transactions: 0 " not in output:
        raise RuntimeError(f"pgbench failed ({process.returncode}):\n{output[-2000:]}")
    return float(tps[1])
