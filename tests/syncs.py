"""Counting a process's file syncs with ``strace -c`` (the tests that count fsyncs share this)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["strace_syncs", "syncs_in"]


def strace_syncs(report: Path) -> list[str]:
    """``strace`` counting fsync and fdatasync calls of what follows, into ``report``."""
    return ["strace", "-f", "-c", "-o", str(report), "-e", "trace=fsync,fdatasync"]


def syncs_in(report: Path) -> int:
    """How many fsync and fdatasync calls an ``strace -c`` report counted."""
    calls = [line.split() for line in report.read_text().splitlines()]
    return sum(int(c[3]) for c in calls if c and c[-1] in ("fsync", "fdatasync"))
