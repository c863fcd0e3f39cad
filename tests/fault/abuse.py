"""Shared measuring tools of the abuse tests (test_abuse_*.py): what a normal client saw while an
attacker ran, and how much memory a node process holds.

A normal client is `harness.BackgroundWriter` (bounded in count and time, records each call's
latency). The bounds the abuse tests assert are stated beside each test; they are deliberately
loose (the machine has 2 cores shared by attacker, nodes and probe) so they catch a stalled or
starved node, not a slow one.
"""

from __future__ import annotations

import math
from pathlib import Path


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid`, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q ≤ 100) of `samples`, which must not be empty."""
    if not samples:
        raise AssertionError("no samples: the normal client made no successful call")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
