"""Figures from samples: medians, spreads and A/B ratios, as plain JSON-able dicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["Figure", "ab_ratio", "percentile", "summary"]

Figure = dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _r(value: float) -> float:
    return round(value, 4)


def summary(values: Sequence[float], unit: str, **extra: Any) -> Figure:
    """median / p95 / min / max / n of raw samples."""
    if not values:
        raise ValueError("a figure needs at least one sample")
    return {
        "median": _r(statistics.median(values)),
        "p95": _r(percentile(values, 95)),
        "min": _r(min(values)),
        "max": _r(max(values)),
        "n": len(values),
        "unit": unit,
        **extra,
    }


def ab_ratio(
    a_rounds: Sequence[float],
    b_rounds: Sequence[float],
    *,
    unit: str,
    a_name: str,
    b_name: str,
    a_unit: str,
    **extra: Any,
) -> Figure:
    """A ÷ B per A/B round; median, min and max of those ratios, with both sides' figures."""
    if not a_rounds or len(a_rounds) != len(b_rounds):
        raise ValueError("A/B ratios need the same number of rounds on both sides")
    ratios = [a / b for a, b in zip(a_rounds, b_rounds, strict=True)]
    return {
        "median": _r(statistics.median(ratios)),
        "min": _r(min(ratios)),
        "max": _r(max(ratios)),
        "n": len(ratios),
        "unit": unit,
        "rounds": [_r(x) for x in ratios],
        a_name: summary(a_rounds, a_unit),
        "baseline": summary(b_rounds, a_unit) | {"name": b_name},
        **extra,
    }
