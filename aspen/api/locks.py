"""Wire schema of the lock, lock-set, rate-limiter and rwlock requests (reference §4.3, §7.1, §7.4,
§7.6), joined into the unions of `aspen.api.coordination`.

Range checks that need the layer's wording (TTL and wait bounds, tokens ≤ capacity) are left to the
layer's `check()`, so the caller gets a domain result with a precise error instead of a generic
INVALID_REQUEST; the models only pin types and the u64 range.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aspen.api.wire import U64
from aspen.api.wire import WireModel as _Model

#: A positive finite rate; an int (e.g. msgpack packs 2.0 from some clients as 2) is accepted too.
Rate = Annotated[float, Field(allow_inf_nan=False)]


# ------------------------------------------------------------------------------------------- lock --
class LockAcquire(_Model):
    type: Literal["LockAcquire"] = "LockAcquire"
    key: str
    holder_id: str
    ttl_ms: U64
    timeout_ms: U64


class LockTryAcquire(_Model):
    type: Literal["LockTryAcquire"] = "LockTryAcquire"
    key: str
    holder_id: str
    ttl_ms: U64


class LockRelease(_Model):
    type: Literal["LockRelease"] = "LockRelease"
    key: str
    holder_id: str
    fencing_token: U64


class LockRenew(_Model):
    type: Literal["LockRenew"] = "LockRenew"
    key: str
    holder_id: str
    fencing_token: U64
    ttl_ms: U64


class LockResult(_Model):
    type: Literal["LockResult"] = "LockResult"
    is_success: bool
    fencing_token: U64 | None = None
    holder_id: str | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class LockSetAcquire(_Model):
    type: Literal["LockSetAcquire"] = "LockSetAcquire"
    keys: list[str]
    holder_id: str
    ttl_ms: U64
    timeout_ms: U64


class LockSetTryAcquire(_Model):
    type: Literal["LockSetTryAcquire"] = "LockSetTryAcquire"
    keys: list[str]
    holder_id: str
    ttl_ms: U64


class LockSetRelease(_Model):
    type: Literal["LockSetRelease"] = "LockSetRelease"
    keys: list[str]
    holder_id: str
    fencing_tokens: list[U64]


class LockSetRenew(_Model):
    type: Literal["LockSetRenew"] = "LockSetRenew"
    keys: list[str]
    holder_id: str
    fencing_tokens: list[U64]
    ttl_ms: U64


class LockSetResult(_Model):
    """`fencing_tokens` is aligned with the request's `keys`."""

    type: Literal["LockSetResult"] = "LockSetResult"
    is_success: bool
    fencing_tokens: list[U64] | None = None
    deadline_ms: U64 | None = None
    blocked_member: str | None = None
    blocked_holder: str | None = None
    error: str | None = None


# ----------------------------------------------------------------------------------- rate limiter --
class RateLimiterTryAcquire(_Model):
    type: Literal["RateLimiterTryAcquire"] = "RateLimiterTryAcquire"
    key: str
    tokens: U64
    capacity: U64
    refill_rate: Rate


class RateLimiterAcquire(_Model):
    type: Literal["RateLimiterAcquire"] = "RateLimiterAcquire"
    key: str
    tokens: U64
    capacity: U64
    refill_rate: Rate
    timeout_ms: U64


class RateLimiterAvailable(_Model):
    type: Literal["RateLimiterAvailable"] = "RateLimiterAvailable"
    key: str
    capacity: U64
    refill_rate: Rate


class RateLimiterReset(_Model):
    type: Literal["RateLimiterReset"] = "RateLimiterReset"
    key: str
    capacity: U64
    refill_rate: Rate


class RateLimiterResult(_Model):
    type: Literal["RateLimiterResult"] = "RateLimiterResult"
    is_success: bool
    tokens_remaining: U64 | None = None
    retry_after_ms: U64 | None = None
    error: str | None = None


# ----------------------------------------------------------------------------------------- rwlock --
class RWLockAcquireRead(_Model):
    type: Literal["RWLockAcquireRead"] = "RWLockAcquireRead"
    name: str
    holder_id: str
    ttl_ms: U64
    timeout_ms: U64


class RWLockTryAcquireRead(_Model):
    type: Literal["RWLockTryAcquireRead"] = "RWLockTryAcquireRead"
    name: str
    holder_id: str
    ttl_ms: U64


class RWLockAcquireWrite(_Model):
    type: Literal["RWLockAcquireWrite"] = "RWLockAcquireWrite"
    name: str
    holder_id: str
    ttl_ms: U64
    timeout_ms: U64


class RWLockTryAcquireWrite(_Model):
    type: Literal["RWLockTryAcquireWrite"] = "RWLockTryAcquireWrite"
    name: str
    holder_id: str
    ttl_ms: U64


class RWLockReleaseRead(_Model):
    type: Literal["RWLockReleaseRead"] = "RWLockReleaseRead"
    name: str
    holder_id: str


class RWLockReleaseWrite(_Model):
    type: Literal["RWLockReleaseWrite"] = "RWLockReleaseWrite"
    name: str
    holder_id: str
    fencing_token: U64


class RWLockDowngrade(_Model):
    type: Literal["RWLockDowngrade"] = "RWLockDowngrade"
    name: str
    holder_id: str
    fencing_token: U64
    ttl_ms: U64


class RWLockStatus(_Model):
    type: Literal["RWLockStatus"] = "RWLockStatus"
    name: str


class _RwLockBody(_Model):
    """`RwLockResultResponse`: the body all eight rwlock results share."""

    is_success: bool
    mode: Literal["free", "read", "write"] | None = None
    fencing_token: U64 | None = None
    deadline_ms: U64 | None = None
    reader_count: U64 | None = None
    writer_holder: str | None = None
    error: str | None = None


class RWLockAcquireReadResult(_RwLockBody):
    type: Literal["RWLockAcquireReadResult"] = "RWLockAcquireReadResult"


class RWLockTryAcquireReadResult(_RwLockBody):
    type: Literal["RWLockTryAcquireReadResult"] = "RWLockTryAcquireReadResult"


class RWLockAcquireWriteResult(_RwLockBody):
    type: Literal["RWLockAcquireWriteResult"] = "RWLockAcquireWriteResult"


class RWLockTryAcquireWriteResult(_RwLockBody):
    type: Literal["RWLockTryAcquireWriteResult"] = "RWLockTryAcquireWriteResult"


class RWLockReleaseReadResult(_RwLockBody):
    type: Literal["RWLockReleaseReadResult"] = "RWLockReleaseReadResult"


class RWLockReleaseWriteResult(_RwLockBody):
    type: Literal["RWLockReleaseWriteResult"] = "RWLockReleaseWriteResult"


class RWLockDowngradeResult(_RwLockBody):
    type: Literal["RWLockDowngradeResult"] = "RWLockDowngradeResult"


class RWLockStatusResult(_RwLockBody):
    type: Literal["RWLockStatusResult"] = "RWLockStatusResult"


RwLockResponse = (
    RWLockAcquireReadResult
    | RWLockTryAcquireReadResult
    | RWLockAcquireWriteResult
    | RWLockTryAcquireWriteResult
    | RWLockReleaseReadResult
    | RWLockReleaseWriteResult
    | RWLockDowngradeResult
    | RWLockStatusResult
)

#: The response type of each rwlock request (`<request>Result`).
RWLOCK_RESULTS: dict[str, type[_RwLockBody]] = {
    cls.model_fields["type"].default.removesuffix("Result"): cls
    for cls in (
        RWLockAcquireReadResult,
        RWLockTryAcquireReadResult,
        RWLockAcquireWriteResult,
        RWLockTryAcquireWriteResult,
        RWLockReleaseReadResult,
        RWLockReleaseWriteResult,
        RWLockDowngradeResult,
        RWLockStatusResult,
    )
}

LockRequest = (
    LockAcquire
    | LockTryAcquire
    | LockRelease
    | LockRenew
    | LockSetAcquire
    | LockSetTryAcquire
    | LockSetRelease
    | LockSetRenew
    | RateLimiterTryAcquire
    | RateLimiterAcquire
    | RateLimiterAvailable
    | RateLimiterReset
    | RWLockAcquireRead
    | RWLockTryAcquireRead
    | RWLockAcquireWrite
    | RWLockTryAcquireWrite
    | RWLockReleaseRead
    | RWLockReleaseWrite
    | RWLockDowngrade
    | RWLockStatus
)
LockResponse = LockResult | LockSetResult | RateLimiterResult | RwLockResponse

#: Forwarded to the leader; never retried blindly (an acquire must not be applied twice).
LOCK_WRITE_REQUESTS = frozenset(
    {
        "LockAcquire",
        "LockTryAcquire",
        "LockRelease",
        "LockRenew",
        "LockSetAcquire",
        "LockSetTryAcquire",
        "LockSetRelease",
        "LockSetRenew",
        "RateLimiterTryAcquire",
        "RateLimiterAcquire",
        "RateLimiterReset",
        "RWLockAcquireRead",
        "RWLockTryAcquireRead",
        "RWLockAcquireWrite",
        "RWLockTryAcquireWrite",
        "RWLockReleaseRead",
        "RWLockReleaseWrite",
        "RWLockDowngrade",
    }
)
LOCK_READ_REQUESTS = frozenset({"RateLimiterAvailable", "RWLockStatus"})

__all__ = [
    "LOCK_READ_REQUESTS",
    "LOCK_WRITE_REQUESTS",
    "RWLOCK_RESULTS",
    "LockAcquire",
    "LockRelease",
    "LockRenew",
    "LockRequest",
    "LockResponse",
    "LockResult",
    "LockSetAcquire",
    "LockSetRelease",
    "LockSetRenew",
    "LockSetResult",
    "LockSetTryAcquire",
    "LockTryAcquire",
    "RWLockAcquireRead",
    "RWLockAcquireReadResult",
    "RWLockAcquireWrite",
    "RWLockAcquireWriteResult",
    "RWLockDowngrade",
    "RWLockDowngradeResult",
    "RWLockReleaseRead",
    "RWLockReleaseReadResult",
    "RWLockReleaseWrite",
    "RWLockReleaseWriteResult",
    "RWLockStatus",
    "RWLockStatusResult",
    "RWLockTryAcquireRead",
    "RWLockTryAcquireReadResult",
    "RWLockTryAcquireWrite",
    "RWLockTryAcquireWriteResult",
    "RateLimiterAcquire",
    "RateLimiterAvailable",
    "RateLimiterReset",
    "RateLimiterResult",
    "RateLimiterTryAcquire",
    "RwLockResponse",
]
