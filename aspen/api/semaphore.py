"""Wire models of the semaphore requests (reference §4.3 97-100, §7.5). All four answer with a
`SemaphoreResult` (the reference's `SemaphoreResultResponse`)."""

from __future__ import annotations

from typing import Literal

from aspen.api.wire import U64, WireModel

#: The error of a blocking acquire that ran out of time (the client re-issues it while time is left).
ACQUIRE_TIMEOUT = "semaphore acquire timeout"


class SemaphoreAcquire(WireModel):
    """Blocking acquire: the node retries until the permits are acquired or `timeout_ms` passed."""

    type: Literal["SemaphoreAcquire"] = "SemaphoreAcquire"
    name: str
    holder_id: str
    permits: U64
    capacity_permits: U64
    ttl_ms: U64
    timeout_ms: U64


class SemaphoreTryAcquire(WireModel):
    type: Literal["SemaphoreTryAcquire"] = "SemaphoreTryAcquire"
    name: str
    holder_id: str
    permits: U64
    capacity_permits: U64
    ttl_ms: U64


class SemaphoreRelease(WireModel):
    """Release `permits` of the holder's permits (0 = all)."""

    type: Literal["SemaphoreRelease"] = "SemaphoreRelease"
    name: str
    holder_id: str
    permits: U64 = 0


class SemaphoreStatus(WireModel):
    type: Literal["SemaphoreStatus"] = "SemaphoreStatus"
    name: str


class SemaphoreResult(WireModel):
    type: Literal["SemaphoreResult"] = "SemaphoreResult"
    is_success: bool
    permits_acquired: U64 | None = None
    available: U64 | None = None
    capacity_permits: U64 | None = None
    retry_after_ms: U64 | None = None
    error: str | None = None


SEMAPHORE_WRITES = frozenset({"SemaphoreAcquire", "SemaphoreTryAcquire", "SemaphoreRelease"})
SEMAPHORE_READS = frozenset({"SemaphoreStatus"})

__all__ = [
    "ACQUIRE_TIMEOUT",
    "SEMAPHORE_READS",
    "SEMAPHORE_WRITES",
    "SemaphoreAcquire",
    "SemaphoreRelease",
    "SemaphoreResult",
    "SemaphoreStatus",
    "SemaphoreTryAcquire",
]
