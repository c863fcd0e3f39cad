"""Dispatch of the rwlock and rate-limiter requests (mixed into `CoordinationHandlers`): wire
request → layer op → one proposal → wire result. (Locks and lock sets are declared operations:
aspen.api.locks, aspen.node.dispatch.)

Blocking requests (rwlock read/write, rate-limiter acquire) are loops *here*,
on the leader, over the layers' non-blocking ops, bounded by the request's `timeout_ms` (≤ 300 s)
and by an iteration cap. Between attempts a waiter looks at the leader's local state (a hint, never
a decision: only an applied command decides) so that it proposes only when an attempt can succeed,
instead of filling the log with doomed tries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aspen.api import locks as w
from aspen.layers import lock, ratelimit
from aspen.node.clock import now_ms

if TYPE_CHECKING:
    from aspen.kv import KvView
    from aspen.layers.framework import Layer, Op

Handler = Callable[[Any], Awaitable[Any]]

#: Poll interval of a waiter: from the first value, doubling, to the cap (seconds).
_POLL_FIRST_S = 0.005
_POLL_CAP_S = 0.05
#: Hard cap on the iterations of one wait (the deadline normally ends it far earlier).
_MAX_POLLS = 100_000


class _Waiter:
    """Deadline and back-off of one blocking request."""

    def __init__(self, timeout_ms: int) -> None:
        self.deadline = time.monotonic() + timeout_ms / 1000
        self._pause = _POLL_FIRST_S
        self.polls = 0

    def remaining_ms(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def expired(self) -> bool:
        return self.polls >= _MAX_POLLS or time.monotonic() >= self.deadline

    async def pause(self) -> None:
        self.polls += 1
        await asyncio.sleep(max(0.0, min(self._pause, self.deadline - time.monotonic())))
        self._pause = min(_POLL_CAP_S, self._pause * 2)


class LockHandlers:
    """Handlers of the rwlock and rate-limiter requests; `CoordinationHandlers` provides the proposer."""

    if TYPE_CHECKING:
        _barrier: Callable[[bool], Awaitable[None]]

        async def _propose(self, layer: Layer[Any, Any], op: Op, size: int) -> Any: ...

        def _view(self) -> KvView: ...

    def lock_handlers(self) -> dict[str, Handler]:
        return {
            "RateLimiterTryAcquire": self._rate_try_acquire,
            "RateLimiterAcquire": self._rate_acquire,
            "RateLimiterAvailable": self._rate_available,
            "RateLimiterReset": self._rate_reset,
        }

    # ---------------------------------------------------------------------------- rate limiter --
    async def _rate_try(
        self, req: w.RateLimiterTryAcquire | w.RateLimiterAcquire
    ) -> ratelimit.RateLimiterResult:
        op = ratelimit.RateLimiterTryAcquire(req.key, req.tokens, req.capacity, float(req.refill_rate))
        res: ratelimit.RateLimiterResult = await self._propose(ratelimit.LAYER, op, len(req.key))
        return res

    async def _rate_try_acquire(self, req: w.RateLimiterTryAcquire) -> w.RateLimiterResult:
        return w.RateLimiterResult(**dataclasses.asdict(await self._rate_try(req)))

    async def _rate_acquire(self, req: w.RateLimiterAcquire) -> w.RateLimiterResult:
        error = lock.check_wait(req.timeout_ms)
        if error is not None:
            return w.RateLimiterResult(is_success=False, error=error)
        waiter = _Waiter(req.timeout_ms)
        while True:
            res = await self._rate_try(req)
            retry_ms = res.retry_after_ms
            # Done on success, on a rejection, or when the tokens cannot come before the deadline.
            if res.is_success or retry_ms is None or retry_ms > waiter.remaining_ms() or waiter.expired():
                return w.RateLimiterResult(**dataclasses.asdict(res))
            waiter.polls += 1
            await asyncio.sleep(retry_ms / 1000)

    async def _rate_available(self, req: w.RateLimiterAvailable) -> w.RateLimiterResult:
        await self._barrier(False)
        res = ratelimit.available(self._view(), req.key, req.capacity, float(req.refill_rate), now_ms())
        return w.RateLimiterResult(**dataclasses.asdict(res))

    async def _rate_reset(self, req: w.RateLimiterReset) -> w.RateLimiterResult:
        op = ratelimit.RateLimiterReset(req.key, req.capacity, float(req.refill_rate))
        res: ratelimit.RateLimiterResult = await self._propose(ratelimit.LAYER, op, len(req.key))
        return w.RateLimiterResult(**dataclasses.asdict(res))


__all__ = ["LockHandlers"]
