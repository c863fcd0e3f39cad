"""Dispatch of the semaphore requests (reference §7.5): try-acquire and release are one proposal
each; acquire is a bounded loop of try-acquires (`coord_wait.poll`); status is a read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aspen.api import semaphore as w
from aspen.layers import semaphore
from aspen.node.coord_wait import deadline_after, now_ms, poll

if TYPE_CHECKING:
    from aspen.node.coordination import CoordinationHandlers, Handler


def _wire(res: semaphore.SemaphoreResult) -> w.SemaphoreResult:
    return w.SemaphoreResult(
        is_success=res.is_success,
        permits_acquired=res.permits_acquired,
        available=res.available,
        capacity_permits=res.capacity,
        retry_after_ms=res.retry_after_ms,
        error=res.error,
    )


class SemaphoreHandlers:
    def __init__(self, coord: CoordinationHandlers) -> None:
        self._coord = coord

    def handlers(self) -> dict[str, Handler]:
        return {
            "SemaphoreAcquire": self._acquire,
            "SemaphoreTryAcquire": self._try_acquire,
            "SemaphoreRelease": self._release,
            "SemaphoreStatus": self._status,
        }

    async def _propose(self, op: semaphore.SemaphoreOp) -> semaphore.SemaphoreResult:
        res: semaphore.SemaphoreResult = await self._coord._propose(
            semaphore.LAYER, op, len(op.name) + len(op.holder_id)
        )
        return res

    async def _try_acquire(self, req: w.SemaphoreTryAcquire) -> w.SemaphoreResult:
        op = semaphore.SemaphoreTryAcquire(
            req.name, req.holder_id, req.permits, req.capacity_permits, req.ttl_ms
        )
        return _wire(await self._propose(op))

    async def _acquire(self, req: w.SemaphoreAcquire) -> w.SemaphoreResult:
        op = semaphore.SemaphoreTryAcquire(
            req.name, req.holder_id, req.permits, req.capacity_permits, req.ttl_ms
        )
        last: list[semaphore.SemaphoreResult] = []

        async def step() -> semaphore.SemaphoreResult | None:
            res = await self._propose(op)
            last.append(res)
            # Done on success or on a real error; "no permits now" has no error: wait and retry.
            return res if res.is_success or res.error is not None else None

        done = await poll(deadline_after(req.timeout_ms), step)
        if done is not None:
            return _wire(done)
        res = last[-1]
        return w.SemaphoreResult(
            is_success=False,
            permits_acquired=0,
            available=res.available,
            capacity_permits=res.capacity,
            retry_after_ms=res.retry_after_ms,
            error=w.ACQUIRE_TIMEOUT,
        )

    async def _release(self, req: w.SemaphoreRelease) -> w.SemaphoreResult:
        return _wire(await self._propose(semaphore.SemaphoreRelease(req.name, req.holder_id, req.permits)))

    async def _status(self, req: w.SemaphoreStatus) -> w.SemaphoreResult:
        await self._coord._barrier(False)
        return _wire(semaphore.status(self._coord._view(), req.name, now_ms()))


__all__ = ["SemaphoreHandlers"]
