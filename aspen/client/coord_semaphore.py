"""Semaphores in the client: flat methods returning the wire result, and a handle for `async with`:

async with client.semaphore("pool", capacity=3, permits=1, ttl_ms=30_000) as held:
    ...  # `held` permits are ours until the block exits (or the TTL passes)
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, TypeVar

from aspen.api import semaphore as w
from aspen.api.errors import AspenError
from aspen.client.coord_wait import call_waiting

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")

DEFAULT_TTL_MS = 30_000
DEFAULT_TIMEOUT_MS = 5_000


class SemaphoreError(AspenError):
    """The semaphore could not be acquired (timed out) or the request was rejected."""


class SemaphoreMixin:
    if TYPE_CHECKING:
        timeout: float

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

        async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...

    async def semaphore_try_acquire(
        self, name: str, holder_id: str, *, capacity: int, permits: int = 1, ttl_ms: int = DEFAULT_TTL_MS
    ) -> w.SemaphoreResult:
        request = w.SemaphoreTryAcquire(
            name=name, holder_id=holder_id, permits=permits, capacity_permits=capacity, ttl_ms=ttl_ms
        )
        return await self._call(request, w.SemaphoreResult)

    async def semaphore_acquire(
        self,
        name: str,
        holder_id: str,
        *,
        capacity: int,
        permits: int = 1,
        ttl_ms: int = DEFAULT_TTL_MS,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> w.SemaphoreResult:
        """Wait up to `timeout_ms` for the permits; a timeout is `is_success=false` with
        error `semaphore acquire timeout`."""

        def make(left_ms: int) -> w.SemaphoreAcquire:
            return w.SemaphoreAcquire(
                name=name,
                holder_id=holder_id,
                permits=permits,
                capacity_permits=capacity,
                ttl_ms=ttl_ms,
                timeout_ms=left_ms,
            )

        return await call_waiting(
            self, make, w.SemaphoreResult, timeout_ms, lambda r: r.error == w.ACQUIRE_TIMEOUT
        )

    async def semaphore_release(self, name: str, holder_id: str, permits: int = 0) -> w.SemaphoreResult:
        request = w.SemaphoreRelease(name=name, holder_id=holder_id, permits=permits)
        return await self._call(request, w.SemaphoreResult)

    async def semaphore_status(self, name: str) -> w.SemaphoreResult:
        return await self._call(w.SemaphoreStatus(name=name), w.SemaphoreResult)

    def semaphore(
        self,
        name: str,
        *,
        capacity: int,
        permits: int = 1,
        ttl_ms: int = DEFAULT_TTL_MS,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        holder_id: str | None = None,
    ) -> Semaphore:
        return Semaphore(self, name, capacity, permits, ttl_ms, timeout_ms, holder_id)


class Semaphore:
    """`async with` acquires (waiting up to `timeout_ms`, raising `SemaphoreError` on failure) and
    yields the permits held; leaving the block releases them all."""

    __slots__ = ("_client", "capacity", "holder_id", "name", "permits", "timeout_ms", "ttl_ms")

    def __init__(
        self,
        client: SemaphoreMixin,
        name: str,
        capacity: int,
        permits: int,
        ttl_ms: int,
        timeout_ms: int,
        holder_id: str | None,
    ) -> None:
        self._client, self.name, self.capacity, self.permits = client, name, capacity, permits
        self.ttl_ms, self.timeout_ms = ttl_ms, timeout_ms
        self.holder_id = holder_id or f"client-{secrets.token_hex(8)}"

    async def acquire(self) -> int:
        res = await self._client.semaphore_acquire(
            self.name,
            self.holder_id,
            capacity=self.capacity,
            permits=self.permits,
            ttl_ms=self.ttl_ms,
            timeout_ms=self.timeout_ms,
        )
        if not res.is_success or res.permits_acquired is None:
            raise SemaphoreError(res.error or "no permits available")
        return res.permits_acquired

    async def release(self) -> None:
        res = await self._client.semaphore_release(self.name, self.holder_id)
        if not res.is_success:
            raise SemaphoreError(res.error or "release failed")

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


__all__ = ["Semaphore", "SemaphoreError", "SemaphoreMixin"]
