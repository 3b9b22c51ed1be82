"""Latency percentiles (nearest rank) in milliseconds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    def as_dict(self) -> dict[str, float | int]:
        return {key: round(value, 3) for key, value in asdict(self).items()}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100); 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(values_ns: Iterable[int]) -> Latency:
    values = sorted(value / 1e6 for value in values_ns)
    if not values:
        return Latency(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return Latency(
        count=len(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=values[-1],
        mean=sum(values) / len(values),
    )
