"""Token-bucket rate limiters, stored as JSON `{tokens, last_update_ms, capacity_tokens,
refill_rate}` in `__coord:ratelimit:<key>`.

Invariants:
- Capacity and refill rate come with every request (a new bucket starts full); the bucket holds
  `available = min(capacity, tokens + elapsed_s * rate)`, with `elapsed` measured between the stored
  `last_update_ms` and the command's `now_ms` (the leader's clock) and never negative: a clock that
  went backwards refills nothing, and `last_update_ms` never decreases.
- `try_acquire(n)` takes n tokens iff n ≤ available, else writes nothing and answers when enough
  tokens will be there (`retry_after_ms`). Asking for more tokens than the capacity is an error
  result, not a crash as in the original Aspen (a failed assertion); so is a rate that is not
  positive and finite.
- Arithmetic is IEEE double, identical on every replica; capacities and token counts are capped at
  2**53 so that they are exact in a double.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.kv.records import parse_record
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key
from aspen.layers.lock import check_wait

PREFIX: Final = "__coord:ratelimit:"
MAX_TOKENS: Final = 2**53
U64_MAX: Final = 2**64 - 1
RATE_LIMITED: Final = "rate limited"
TOO_MANY: Final = "requested tokens exceed capacity"


def storage_key(key: str) -> str:
    return PREFIX + key


def check_bucket(key: str, capacity: int, rate: float) -> str | None:
    if not 1 <= capacity <= MAX_TOKENS:
        return f"capacity must be between 1 and {MAX_TOKENS}"
    if type(rate) is not float or not math.isfinite(rate) or rate <= 0:
        return "rate must be a positive finite number"
    return check_user_key(PREFIX, key)


@dataclass(frozen=True, slots=True)
class RateLimiterTryAcquire:
    key: str
    tokens: int
    capacity: int
    refill_rate: float

    def check(self) -> str | None:
        error = check_bucket(self.key, self.capacity, self.refill_rate)
        if error is not None:
            return error
        if self.tokens < 1:
            return "tokens must be at least 1"
        return TOO_MANY if self.tokens > self.capacity else None


@dataclass(frozen=True, slots=True)
class RateLimiterReset:
    key: str
    capacity: int
    refill_rate: float

    def check(self) -> str | None:
        return check_bucket(self.key, self.capacity, self.refill_rate)


RateLimiterOp = RateLimiterTryAcquire | RateLimiterReset


@dataclass(frozen=True, slots=True)
class RateLimiterResult:
    """`tokens_remaining`: whole tokens left after the operation (null on a failure);
    `retry_after_ms`: when a failed acquire could succeed if nobody else takes tokens."""

    is_success: bool
    tokens_remaining: int | None = None
    retry_after_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Bucket:
    tokens: float
    last_update_ms: int

    def available(self, capacity: int, rate: float, now_ms: int) -> float:
        elapsed_s = max(0, now_ms - self.last_update_ms) / 1000
        return min(float(capacity), self.tokens + elapsed_s * rate)


def _read(reader: KvReader, key: str) -> _Bucket | None:
    raw = reader.get(storage_key(key))
    if raw is None:
        return None
    doc = parse_record(storage_key(key), raw, "a rate limiter bucket")
    tokens: Any = doc.get("tokens")
    last: Any = doc.get("last_update_ms")
    if type(tokens) is int:
        # An int beyond float range (JSON allows any number of digits) is as corrupt as NaN.
        tokens = float(tokens) if abs(tokens) <= U64_MAX else math.nan
    if type(tokens) is not float or type(last) is not int or not math.isfinite(tokens) or tokens < 0:
        raise Rejected(f"corrupted data in key '{storage_key(key)}': not a rate limiter bucket")
    if not 0 <= last <= U64_MAX:
        raise Rejected(f"corrupted data in key '{storage_key(key)}': not a rate limiter bucket")
    return _Bucket(tokens, last)


def _write(txn: KvTxn, key: str, tokens: float, now_ms: int, capacity: int, rate: float) -> None:
    doc = {"tokens": tokens, "last_update_ms": now_ms, "capacity_tokens": capacity, "refill_rate": rate}
    txn.put(storage_key(key), json.dumps(doc, separators=(",", ":")).encode())


def _available(reader: KvReader, key: str, capacity: int, rate: float, now_ms: int) -> tuple[float, int]:
    """(available tokens, the time the bucket is at) — never before its last update."""
    bucket = _read(reader, key)
    if bucket is None:
        return float(capacity), now_ms
    return bucket.available(capacity, rate, now_ms), max(bucket.last_update_ms, now_ms)


def retry_after_ms(missing: float, rate: float) -> int:
    wait = missing / rate * 1000
    return U64_MAX if not math.isfinite(wait) or wait >= U64_MAX else max(1, math.ceil(wait))


def apply(txn: KvTxn, op: RateLimiterOp, now_ms: int) -> RateLimiterResult:
    if isinstance(op, RateLimiterReset):
        _write(txn, op.key, float(op.capacity), now_ms, op.capacity, op.refill_rate)
        return RateLimiterResult(True, op.capacity)
    available, at_ms = _available(txn, op.key, op.capacity, op.refill_rate, now_ms)
    if op.tokens > available:
        retry = retry_after_ms(op.tokens - available, op.refill_rate)
        return RateLimiterResult(False, None, retry, RATE_LIMITED)
    left = available - op.tokens
    _write(txn, op.key, left, at_ms, op.capacity, op.refill_rate)
    return RateLimiterResult(True, math.floor(left))


def available(reader: KvReader, key: str, capacity: int, rate: float, now_ms: int) -> RateLimiterResult:
    """Whole tokens available now (a query: `now_ms` is the serving node's clock; nothing is written)."""
    error = check_bucket(key, capacity, rate)
    if error is not None:
        return RateLimiterResult(False, error=error)
    try:
        return RateLimiterResult(True, math.floor(_available(reader, key, capacity, rate, now_ms)[0]))
    except Rejected as err:
        return RateLimiterResult(False, error=err.message)


def rejected(message: str) -> RateLimiterResult:
    return RateLimiterResult(is_success=False, error=message)


def acquire_blocked(reader: KvReader, now_ms: int, op: RateLimiterTryAcquire) -> Blocked | None:
    """Blocked while the bucket holds fewer than `op.tokens`; time alone refills it (or a reset)."""
    try:
        have, _ = _available(reader, op.key, op.capacity, op.refill_rate, now_ms)
    except Rejected:  # a corrupt bucket: the attempt reports it
        return None
    if op.tokens <= have:
        return None
    retry = retry_after_ms(op.tokens - have, op.refill_rate)
    return Blocked(
        (storage_key(op.key),), RateLimiterResult(False, None, retry, RATE_LIMITED), now_ms + retry
    )


LAYER: Final[Layer[RateLimiterOp, RateLimiterResult]] = Layer(
    name="ratelimit",
    ops=(RateLimiterTryAcquire, RateLimiterReset),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={
        "RateLimiterAvailable": lambda reader, now_ms, key, capacity, refill_rate: available(
            reader, key, capacity, refill_rate, now_ms
        )
    },
    waits={"RateLimiterTryAcquire": Wait(acquire_blocked, check_wait)},
)

__all__ = [
    "LAYER",
    "MAX_TOKENS",
    "PREFIX",
    "RATE_LIMITED",
    "TOO_MANY",
    "RateLimiterOp",
    "RateLimiterReset",
    "RateLimiterResult",
    "RateLimiterTryAcquire",
    "available",
    "retry_after_ms",
    "storage_key",
]
