"""The semaphore handle (the flat methods `semaphore_acquire`, `semaphore_try_acquire`,
`semaphore_release`, `semaphore_status` are derived from the declarations in aspen.api.semaphore):

async with client.semaphore("pool", capacity=3, permits=1, ttl_ms=30_000) as held:
    ...  # `held` permits are ours until the block exits (or the TTL passes)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aspen.api import semaphore as w
from aspen.api.errors import AspenError

DEFAULT_TTL_MS = 30_000
DEFAULT_TIMEOUT_MS = 5_000


class SemaphoreError(AspenError):
    """The semaphore could not be acquired (timed out) or the request was rejected."""


class SemaphoreHandles:
    if TYPE_CHECKING:

        async def call(self, request: Any) -> Any: ...

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
        holder = holder_id or f"client-{secrets.token_hex(8)}"
        return Semaphore(self, name, capacity, permits, ttl_ms, timeout_ms, holder)


@dataclass(slots=True)
class Semaphore:
    """`async with` acquires (waiting up to `timeout_ms`, raising `SemaphoreError` on failure) and
    yields the permits held; leaving the block releases them all."""

    _client: SemaphoreHandles = field(repr=False)
    name: str
    capacity: int
    permits: int
    ttl_ms: int
    timeout_ms: int
    holder_id: str

    async def acquire(self) -> int:
        request = w.SemaphoreAcquire(
            name=self.name,
            holder_id=self.holder_id,
            permits=self.permits,
            capacity_permits=self.capacity,
            ttl_ms=self.ttl_ms,
            timeout_ms=self.timeout_ms,
        )
        res = await self._client.call(request)
        if not res.is_success or res.permits_acquired is None:
            raise SemaphoreError(res.error or "no permits available")
        permits: int = res.permits_acquired
        return permits

    async def release(self) -> None:
        res = await self._client.call(w.SemaphoreRelease(name=self.name, holder_id=self.holder_id))
        if not res.is_success:
            raise SemaphoreError(res.error or "release failed")

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


__all__ = ["Semaphore", "SemaphoreError", "SemaphoreHandles"]
