"""The leader's wall clock, the only source of time for coordination commands (they carry it)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Unix time in ms on this node: stamped into proposals (on the leader) and used by reads that
    judge expiry (lease TTLs, queue visibility); never read inside `apply`."""
    return int(time.time() * 1000)


__all__ = ["now_ms"]
