"""Where the checkout is: the tests start commands from it (the service itself never needs it)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
