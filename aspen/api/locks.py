"""Wire schema of the lock, lock-set, rate-limiter and rwlock requests, joined into the unions of
`aspen.api.coordination`.

Range checks that need the layer's wording (TTL and wait bounds, tokens ≤ capacity) are left to the
layer's `check()`, so the caller gets a domain result with a precise error instead of a generic
INVALID_REQUEST; the models only pin types and the u64 range.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U64, Result
from aspen.api.wire import WireModel as _Model


# ------------------------------------------------------------------------------------------- lock --
class LockResult(Result):
    type: Literal["LockResult"] = "LockResult"
    is_success: bool
    fencing_token: U64 | None = None
    holder_id: str | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class LockSetResult(Result):
    """`fencing_tokens` is aligned with the request's `keys`."""

    type: Literal["LockSetResult"] = "LockSetResult"
    is_success: bool
    fencing_tokens: list[U64] | None = None
    deadline_ms: U64 | None = None
    blocked_member: str | None = None
    blocked_holder: str | None = None
    error: str | None = None


lock = Family(
    "lock", "Distributed locks with fencing tokens (strictly increasing per key).", "lock", LockResult
)

_KEY = Annotated[str, Arg()]
_HOLDER = Annotated[str, Opt("--holder", "Holder id (who takes the lock).", dest="holder_id")]
_TTL = Annotated[U64, Opt("--ttl", "Lock lifetime in ms.", dest="ttl_ms")]
_TOKEN = Annotated[U64, Opt("--fencing-token", "Token from acquire.", dest="fencing_token")]


@lock.blocking("acquire", op="LockTryAcquire")
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


@lock.write("release", omit=("fencing_token",))  # a release answers `fencing_token: null`
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
@lock.blocking(None, result=LockSetResult, op="LockSetTryAcquire", client="lock_set_acquire")
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
def check_rate(rate: float) -> float:
    """A refill rate must be positive and finite (`ValueError` otherwise: the client refuses it
    before anything is sent, and so does the wire edge)."""
    value = float(rate)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("rate must be a positive finite number")
    return value


def _rate(value: float) -> float:
    try:
        return check_rate(value)
    except ValueError as err:
        raise PydanticCustomError("rate", str(err)) from None


#: A positive finite rate; an int (e.g. msgpack packs 2.0 from some clients as 2) is accepted too.
Rate = Annotated[float, AfterValidator(_rate)]


class RateLimiterResult(Result):
    type: Literal["RateLimiterResult"] = "RateLimiterResult"
    is_success: bool
    tokens_remaining: U64 | None = None
    retry_after_ms: U64 | None = None
    error: str | None = None


ratelimit = Family(
    "ratelimit", "Token-bucket rate limiters (capacity and refill rate given with every request).",
    "ratelimit", RateLimiterResult,
)  # fmt: skip
_CAPACITY = Annotated[U64, Opt("--capacity", "Bucket size in tokens.")]
_RATE = Annotated[Rate, Opt("--rate", "Refill rate in tokens per second.")]
_TOKENS = Annotated[U64, Opt("--tokens", "Tokens to take.", default=1)]


@ratelimit.write("try-acquire", client="rate_limiter_try_acquire")
class RateLimiterTryAcquire(_Model):
    """Take --tokens from bucket KEY if they are there; fail at once otherwise."""

    type: Literal["RateLimiterTryAcquire"] = "RateLimiterTryAcquire"
    key: _KEY
    capacity: _CAPACITY
    refill_rate: _RATE
    tokens: _TOKENS


@ratelimit.blocking("acquire", op="RateLimiterTryAcquire", client="rate_limiter_acquire")
class RateLimiterAcquire(_Model):
    """Take --tokens from bucket KEY, waiting up to --timeout ms for the bucket to refill."""

    type: Literal["RateLimiterAcquire"] = "RateLimiterAcquire"
    key: _KEY
    capacity: _CAPACITY
    refill_rate: _RATE
    tokens: _TOKENS
    timeout_ms: Annotated[U64, Opt("--timeout", "How long to wait for the tokens, in ms.", default=5000)]


@ratelimit.read("available", client="rate_limiter_available")
class RateLimiterAvailable(_Model):
    """Print the whole tokens available in bucket KEY now."""

    type: Literal["RateLimiterAvailable"] = "RateLimiterAvailable"
    key: _KEY
    capacity: _CAPACITY
    refill_rate: _RATE


@ratelimit.write("reset", client="rate_limiter_reset")
class RateLimiterReset(_Model):
    """Refill bucket KEY to --capacity."""

    type: Literal["RateLimiterReset"] = "RateLimiterReset"
    key: _KEY
    capacity: _CAPACITY
    refill_rate: _RATE


# ----------------------------------------------------------------------------------------- rwlock --
class _RwLockBody(Result):
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


rwlock = Family("rwlock", "Read-write locks: many readers or one writer; waiting writers go first.", "rwlock")
_NAME = Annotated[str, Arg()]
_RW_HOLDER = Annotated[str, Opt("--holder", "Holder id.", dest="holder_id")]
_RW_TTL = Annotated[U64, Opt("--ttl", "Lifetime in ms.", default=30000, dest="ttl_ms")]
_RW_TOKEN = Annotated[U64, Opt("--fencing-token", "Write token.", dest="fencing_token")]


_READ_WAIT = Annotated[U64, Opt("--timeout", "How long to wait for the read lock, in ms.", default=5000)]
_WRITE_WAIT = Annotated[U64, Opt("--timeout", "How long to wait for the write lock, in ms.", default=5000)]


@rwlock.blocking("read", result=RWLockAcquireReadResult, op="RwLockTryRead")
class RWLockAcquireRead(_Model):
    """Take a read lock on NAME, waiting while a writer holds or waits for it."""

    type: Literal["RWLockAcquireRead"] = "RWLockAcquireRead"
    name: _NAME
    holder_id: _RW_HOLDER
    ttl_ms: _RW_TTL
    timeout_ms: _READ_WAIT


@rwlock.write("try-read", result=RWLockTryAcquireReadResult, op="RwLockTryRead")
class RWLockTryAcquireRead(_Model):
    """Take a read lock on NAME if no writer holds or waits for it."""

    type: Literal["RWLockTryAcquireRead"] = "RWLockTryAcquireRead"
    name: _NAME
    holder_id: _RW_HOLDER
    ttl_ms: _RW_TTL


@rwlock.blocking("write", result=RWLockAcquireWriteResult, op="RwLockTryWrite")
class RWLockAcquireWrite(_Model):
    """Take the write lock on NAME, waiting (and holding off new readers) until it is free."""

    type: Literal["RWLockAcquireWrite"] = "RWLockAcquireWrite"
    name: _NAME
    holder_id: _RW_HOLDER
    ttl_ms: _RW_TTL
    timeout_ms: _WRITE_WAIT


@rwlock.write("try-write", result=RWLockTryAcquireWriteResult, op="RwLockTryWrite", fixed={"wait_ms": 0})
class RWLockTryAcquireWrite(_Model):
    """Take the write lock on NAME if it is free."""

    type: Literal["RWLockTryAcquireWrite"] = "RWLockTryAcquireWrite"
    name: _NAME
    holder_id: _RW_HOLDER
    ttl_ms: _RW_TTL


@rwlock.write("release-read", result=RWLockReleaseReadResult, op="RwLockReleaseRead")
class RWLockReleaseRead(_Model):
    """Release the read lock --holder has on NAME."""

    type: Literal["RWLockReleaseRead"] = "RWLockReleaseRead"
    name: _NAME
    holder_id: _RW_HOLDER


@rwlock.write("release-write", result=RWLockReleaseWriteResult, op="RwLockReleaseWrite")
class RWLockReleaseWrite(_Model):
    """Release the write lock --holder has on NAME with --fencing-token."""

    type: Literal["RWLockReleaseWrite"] = "RWLockReleaseWrite"
    name: _NAME
    holder_id: _RW_HOLDER
    fencing_token: _RW_TOKEN


@rwlock.write("downgrade", result=RWLockDowngradeResult, op="RwLockDowngrade")
class RWLockDowngrade(_Model):
    """Turn the write lock on NAME into a read lock of the same holder; the token is kept."""

    type: Literal["RWLockDowngrade"] = "RWLockDowngrade"
    name: _NAME
    holder_id: _RW_HOLDER
    fencing_token: _RW_TOKEN
    ttl_ms: _RW_TTL


@rwlock.read("status", result=RWLockStatusResult)
class RWLockStatus(_Model):
    """Print the mode of NAME: free, read (with the reader count) or write (with the holder)."""

    type: Literal["RWLockStatus"] = "RWLockStatus"
    name: _NAME
