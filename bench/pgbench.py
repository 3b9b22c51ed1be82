"""The limit: pgbench running exactly the SQL the service issues for one payment.

`insert_processing_many` and `settle_payments` (a create alone in its group commit) are read
from sql/payment_batches.sql with aiosql's "sqlite3" driver, which keeps the `:name`
placeholders; insert's items become a JSON array of one payment built from pgbench
variables, settle's arrays one-element arrays (its payment id is the id insert returned,
by `\\gset`). `-M prepared` binds them as asyncpg does; each statement
is its own autocommit transaction, as in the service; one script run, one payment.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiosql

from service.db.embedded import bin_dir
from service.db.sql import SQL_DIR

PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # `:name`, not a `::type` cast
# One item, without an Idempotency-Key, as the load phases send them.
INSERT = {
    "items": "jsonb_build_array(jsonb_build_object('payment', jsonb_build_object("
    "'order_id', CAST(:order_id AS bigint), 'amount', CAST(:amount AS numeric), "
    "'currency', 'JPY')))"
}
SETTLE = {"payment_ids": "ARRAY[:p_id]", "statuses": "'{COMPLETED}'", "request_ids": "'{bench}'"}
SETTLE |= {"from_statuses": "'{PROCESSING}'"}  # the compare-and-set's sources of COMPLETED
# The attempt settled is the one insert started; an approval has no failure.
SETTLE |= {"transaction_ids": "ARRAY[:p_transaction_id]"}
SETTLE |= {"failure_codes": "'{NULL}'", "failure_messages": "'{NULL}'"}
# The simulator's reference of the charge; nothing for the buyer to do next.
SETTLE |= {"gateway_references": "ARRAY['sim_' || :p_transaction_id]", "next_actions": "'{NULL}'"}


def statement(query: aiosql.types.QueryFn, values: dict[str, str]) -> str:
    if not set(PLACEHOLDER.findall(query.sql)) == set(query.parameters or ()) == set(values):
        raise ValueError(f"{query.__name__} no longer takes {sorted(values)}: update bench")
    return PLACEHOLDER.sub(lambda m: values[m[1]], query.sql).strip().removesuffix(";")


def payment_script() -> str:
    queries = aiosql.from_path(SQL_DIR / "payment_batches.sql", "sqlite3")
    insert = statement(queries.insert_processing_many, INSERT)
    settle = statement(queries.settle_payments, SETTLE)
    return (
        "\\set order_id random(1, 1000000000000)\n\\set amount random(100, 1000000)\n"
        f"{insert} \\gset p_\n{settle};\n"
    )


async def pgbench(url: str, script: Path, concurrency: int, seconds: int) -> float:
    """Payments per second (tps without connection time); raises if any failed."""
    argv = [str(bin_dir() / "pgbench"), "--no-vacuum", "--protocol=prepared", f"--file={script}"]
    argv += [f"--client={concurrency}", "--jobs=2", f"--time={max(1, seconds)}", url]
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
