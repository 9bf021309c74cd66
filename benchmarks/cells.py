"""How a figure is shown in a table cell: milliseconds, ratios, a summary's percentile."""

from __future__ import annotations

from typing import Any

__all__ = ["figure", "ms", "times"]


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) < 10:
        return f"{value:.2f}"
    if abs(value) < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}×" if value >= 10 else f"{value:.2f}×"


def figure(block: dict[str, Any] | None, key: str = "median_ms") -> str:
    """One figure of a :func:`~benchmarks.stats.summary` (its median unless ``key`` says)."""
    if not block:
        return "–"
    if "skipped" in block:
        return "skipped"
    return ms(block.get(key))
