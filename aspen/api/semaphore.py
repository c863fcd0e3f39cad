"""Semaphores: a capacity of permits shared by holders with a TTL. The operations are declared
here once (aspen.api.operation); all four answer with a `SemaphoreResult`."""

from __future__ import annotations

from typing import Annotated, Literal

from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U64, Result, WireModel

_U32_MAX = 2**32 - 1


class SemaphoreResult(Result):
    type: Literal["SemaphoreResult"] = "SemaphoreResult"
    is_success: bool
    permits_acquired: U64 | None = None
    available: U64 | None = None
    capacity_permits: U64 | None = None
    retry_after_ms: U64 | None = None
    error: str | None = None


semaphore = Family(
    "semaphore", "Counting semaphores: a capacity of permits shared by holders with a TTL.", "semaphore",
    SemaphoreResult,
)  # fmt: skip

_NAME = Annotated[str, Arg()]
_HOLDER = Annotated[str, Opt("--holder", "Holder id.")]
_CAPACITY = Annotated[
    U64, Opt("--capacity", "Total permits (fixed by the first acquirer).", low=1, high=_U32_MAX)
]
_PERMITS = Annotated[U64, Opt("--permits", default=1, low=1, high=_U32_MAX)]
_TTL = Annotated[U64, Opt("--ttl", "Holder TTL in ms.", default=30_000, low=1, high=_U32_MAX)]


@semaphore.blocking("acquire", op="SemaphoreTryAcquire")
class SemaphoreAcquire(WireModel):
    """Acquire PERMITS of semaphore NAME, waiting up to --timeout ms.

    The node waits until the permits are acquired or `timeout_ms` passed, proposing nothing while
    no permits are free."""

    type: Literal["SemaphoreAcquire"] = "SemaphoreAcquire"
    name: _NAME
    holder_id: _HOLDER
    permits: _PERMITS
    capacity_permits: _CAPACITY
    ttl_ms: _TTL
    timeout_ms: Annotated[U64, Opt("--timeout", "How long to wait for the permits, in ms.", default=5000)]


@semaphore.write("try-acquire")
class SemaphoreTryAcquire(WireModel):
    """Acquire PERMITS of semaphore NAME if available now; exit 1 if not."""

    type: Literal["SemaphoreTryAcquire"] = "SemaphoreTryAcquire"
    name: _NAME
    holder_id: _HOLDER
    permits: _PERMITS
    capacity_permits: _CAPACITY
    ttl_ms: _TTL


@semaphore.write("release")
class SemaphoreRelease(WireModel):
    """Release the holder's permits of semaphore NAME."""

    type: Literal["SemaphoreRelease"] = "SemaphoreRelease"
    name: _NAME
    holder_id: _HOLDER
    permits: Annotated[U64, Opt("--permits", "Permits to release (0 = all).", high=_U32_MAX)] = 0


@semaphore.read("status")
class SemaphoreStatus(WireModel):
    """Print the available and total permits of semaphore NAME."""

    type: Literal["SemaphoreStatus"] = "SemaphoreStatus"
    name: _NAME
