"""Wire schema of the lock, lock-set, rate-limiter and rwlock requests (reference §4.3, §7.1, §7.4,
§7.6), joined into the unions of `aspen.api.coordination`.

Range checks that need the layer's wording (TTL and wait bounds, tokens ≤ capacity) are left to the
layer's `check()`, so the caller gets a domain result with a precise error instead of a generic
INVALID_REQUEST; the models only pin types and the u64 range.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U64
from aspen.api.wire import WireModel as _Model

#: A positive finite rate; an int (e.g. msgpack packs 2.0 from some clients as 2) is accepted too.
Rate = Annotated[float, Field(allow_inf_nan=False)]


# ------------------------------------------------------------------------------------------- lock --
class LockResult(_Model):
    type: Literal["LockResult"] = "LockResult"
    is_success: bool
    fencing_token: U64 | None = None
    holder_id: str | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class LockSetResult(_Model):
    """`fencing_tokens` is aligned with the request's `keys`."""

    type: Literal["LockSetResult"] = "LockSetResult"
    is_success: bool
    fencing_tokens: list[U64] | None = None
    deadline_ms: U64 | None = None
    blocked_member: str | None = None
    blocked_holder: str | None = None
    error: str | None = None


def lock_waited_out(result: Any) -> bool:
    """The node's wait (one slice of it) ended without the lock, rwlock or tokens: the client
    tries again with the time left."""
    error: str | None = getattr(result, "error", None)
    return bool(error and error.startswith("operation timed out"))


lock = Family(
    "lock", "Distributed locks with fencing tokens (strictly increasing per key).", "lock", LockResult
)

_KEY = Annotated[str, Arg()]
_HOLDER = Annotated[str, Opt("--holder", "Holder id (who takes the lock).")]
_TTL = Annotated[U64, Opt("--ttl", "Lock lifetime in ms.")]
_TOKEN = Annotated[U64, Opt("--fencing-token", "Token from acquire.")]


@lock.blocking("acquire", op="LockTryAcquire", again=lock_waited_out)
class LockAcquire(_Model):
    """Take lock KEY, waiting up to --timeout ms while another holder has it."""

    type: Literal["LockAcquire"] = "LockAcquire"
    key: _KEY
    holder_id: _HOLDER
    ttl_ms: _TTL
    timeout_ms: Annotated[U64, Opt("--timeout", "How long to wait for the lock, in ms.", default=5000)]


@lock.write("try-acquire")
class LockTryAcquire(_Model):
    """Take lock KEY if it is free; fail at once otherwise."""

    type: Literal["LockTryAcquire"] = "LockTryAcquire"
    key: _KEY
    holder_id: _HOLDER
    ttl_ms: _TTL


@lock.write("release")
class LockRelease(_Model):
    """Release lock KEY held by --holder with --fencing-token."""

    type: Literal["LockRelease"] = "LockRelease"
    key: _KEY
    holder_id: _HOLDER
    fencing_token: _TOKEN


@lock.write("renew")
class LockRenew(_Model):
    """Extend lock KEY to --ttl ms from now; the fencing token stays the same."""

    type: Literal["LockRenew"] = "LockRenew"
    key: _KEY
    holder_id: _HOLDER
    fencing_token: _TOKEN
    ttl_ms: _TTL


# Lock sets have no CLI commands: they are the client's `lock_set` handle (and its flat methods).
@lock.blocking(
    None, result=LockSetResult, op="LockSetTryAcquire", client="lock_set_acquire", again=lock_waited_out
)
class LockSetAcquire(_Model):
    type: Literal["LockSetAcquire"] = "LockSetAcquire"
    keys: list[str]
    holder_id: str
    ttl_ms: U64
    timeout_ms: U64


@lock.write(None, result=LockSetResult, client="lock_set_try_acquire")
class LockSetTryAcquire(_Model):
    type: Literal["LockSetTryAcquire"] = "LockSetTryAcquire"
    keys: list[str]
    holder_id: str
    ttl_ms: U64


@lock.write(None, result=LockSetResult, client="lock_set_release")
class LockSetRelease(_Model):
    type: Literal["LockSetRelease"] = "LockSetRelease"
    keys: list[str]
    holder_id: str
    fencing_tokens: list[U64]


@lock.write(None, result=LockSetResult, client="lock_set_renew")
class LockSetRenew(_Model):
    type: Literal["LockSetRenew"] = "LockSetRenew"
    keys: list[str]
    holder_id: str
    fencing_tokens: list[U64]
    ttl_ms: U64


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
    RateLimiterTryAcquire
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
LockResponse = RateLimiterResult | RwLockResponse

#: Forwarded to the leader; never retried blindly (an acquire must not be applied twice).
LOCK_WRITE_REQUESTS = frozenset(
    {
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
