"""Bounded waiting for the blocking coordination requests (semaphore acquire, dequeue-wait, barrier
enter/leave): the node retries a non-blocking step with capped exponential backoff until it
yields a result or the request's deadline passes. The layers themselves never wait.

Invariants: every wait is bounded by `MAX_WAIT_PER_REQUEST_MS` (so a forwarded request always
answers before the forwarding and client budgets run out) and by the request's own timeout; the
step runs at least once, even with a zero timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aspen.api.wire import MAX_WAIT_PER_REQUEST_MS
from aspen.node.clock import now_ms

T = TypeVar("T")

FIRST_DELAY_S = 0.02
MAX_DELAY_S = 0.5


def deadline_after(timeout_ms: int) -> float:
    """The monotonic deadline of a wait of `timeout_ms`, capped at `MAX_WAIT_PER_REQUEST_MS`."""
    return time.monotonic() + min(timeout_ms, MAX_WAIT_PER_REQUEST_MS) / 1000


async def poll(deadline: float, step: Callable[[], Awaitable[T | None]]) -> T | None:
    """Run `step` until it returns a value or `deadline` (monotonic) passed; None on timeout."""
    delay = FIRST_DELAY_S
    while True:
        result = await step()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY_S)


__all__ = ["deadline_after", "now_ms", "poll"]
