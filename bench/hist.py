"""Log-bucketed latency histograms, the same buckets as ``bench/loadgen/loadgen.js``.

Bucket ``i`` holds values in ``[BASE**i, BASE**(i+1))`` microseconds (about 1 % wide), so merging
the workers' histograms is adding counts and a percentile is exact to the bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

BASE = 1.01


class Histogram:
    """Counts per bucket index; values are microseconds."""

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: dict[int, int] = {}
        if counts:
            self.merge(counts)

    @staticmethod
    def bucket(us: float) -> int:
        """The bucket index of a value in microseconds."""
        return math.floor(math.log(max(us, 1.0)) / math.log(BASE))

    def add(self, us: float, count: int = 1) -> None:
        """Count one value (microseconds)."""
        idx = self.bucket(us)
        self.counts[idx] = self.counts.get(idx, 0) + count

    def merge(self, other: Mapping[int | str, int] | Histogram) -> Histogram:
        """Add another histogram's counts (JSON keys may be strings)."""
        counts = other.counts if isinstance(other, Histogram) else other
        for key, value in counts.items():
            idx = int(key)
            self.counts[idx] = self.counts.get(idx, 0) + int(value)
        return self

    @property
    def total(self) -> int:
        """How many values were counted."""
        return sum(self.counts.values())

    def percentile(self, pct: float) -> float | None:
        """Value (ms, bucket midpoint) below which ``pct`` % of the counts lie; None if empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(total * pct / 100.0))
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                return BASE ** (idx + 0.5) / 1000.0
        return BASE ** (max(self.counts) + 0.5) / 1000.0

    def max(self) -> float | None:
        """Upper edge of the highest non-empty bucket, ms; None if empty."""
        return BASE ** (max(self.counts) + 1) / 1000.0 if self.counts else None

    def summary(self) -> dict[str, float | int | None]:
        """count, p50, p99, p99.9 and max in milliseconds."""
        return {
            "count": self.total,
            "p50_ms": _round(self.percentile(50)),
            "p99_ms": _round(self.percentile(99)),
            "p999_ms": _round(self.percentile(99.9)),
            "max_ms": _round(self.max()),
        }

    def to_json(self) -> dict[str, int]:
        """JSON-friendly counts (string keys)."""
        return {str(k): v for k, v in sorted(self.counts.items())}


def merged(hists: Iterable[Mapping[int | str, int] | Histogram]) -> Histogram:
    """One histogram holding all of ``hists``."""
    out = Histogram()
    for h in hists:
        out.merge(h)
    return out


def percentiles(values_ms: Iterable[float]) -> dict[str, float | int | None]:
    """Exact p50/p99/max of a small list of values in ms (for offline-event lateness)."""
    vals = sorted(values_ms)
    if not vals:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "min_ms": None}

    def pick(pct: float) -> float:
        return vals[min(len(vals) - 1, max(0, math.ceil(len(vals) * pct / 100.0) - 1))]

    return {
        "count": len(vals),
        "min_ms": _round(vals[0]),
        "p50_ms": _round(pick(50)),
        "p99_ms": _round(pick(99)),
        "max_ms": _round(vals[-1]),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
