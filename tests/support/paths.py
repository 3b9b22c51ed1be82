"""Where the checkout is: the tests start commands from it (the service itself never needs it)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def server_directory(prefix: str) -> Iterator[Path]:
    """A new directory for an embedded server's data, removed afterwards.

    Not under pytest's tmp_path: as root, pgserver runs PostgreSQL as a user of its own and
    opens the directories above the data to it, and every pytest session that starts
    closes pytest's temporary root to other users again, cutting off a server that another
    session (a fast loop beside a full run) is still using.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
