"""`python -m bench`: the whole benchmark, one command (see bench/README.md)."""

from __future__ import annotations

import sys

from bench.options import parse_args
from bench.runner import main

if __name__ == "__main__":
    sys.exit(main(parse_args()))
