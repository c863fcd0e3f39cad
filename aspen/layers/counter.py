"""Counters: unsigned (u64, saturating at 0 and at 2**64-1) and signed (i64, saturating at both
ends), stored as decimal text in `__coord:counter:<key>`.

Invariants:
- A missing key reads as 0. Every operation is one log command, applied atomically, so concurrent
  increments from any number of clients are never lost (no read-modify-write race exists).
- Unsigned arithmetic never wraps: `sub` below 0 gives 0, `add` above 2**64-1 gives 2**64-1. Signed
  arithmetic saturates at -2**63 and 2**63-1. Either way the result is a success.
- `cas` succeeds iff the current value (0 if missing) equals `expected`; on a mismatch nothing is
  written and the result carries the *actual* value, which a caller needs to retry (the original
  Aspen reported `expected` there).
- A stored value that is not a valid number for the variant is reported as corrupt, never coerced;
  signed and unsigned counters share the key space, as in the original Aspen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Layer, check_user_key

PREFIX: Final = "__coord:counter:"
U64_MAX: Final = 2**64 - 1
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1
CAS_FAILED: Final = "compare-and-set failed: value has changed"


def storage_key(key: str) -> str:
    return PREFIX + key


def check_name(key: object) -> str | None:
    return check_user_key(PREFIX, key)


def _in_u64(n: int) -> bool:
    return 0 <= n <= U64_MAX


def _in_i64(n: int) -> bool:
    return I64_MIN <= n <= I64_MAX


def _bad_u64(name: str, n: int) -> str | None:
    return None if _in_u64(n) else f"{name} must be between 0 and {U64_MAX}"


# -------------------------------------------------------------------------------------- operations --
@dataclass(frozen=True, slots=True)
class CounterAdd:
    """Unsigned add (incr = add 1), saturating at 2**64-1."""

    key: str
    amount: int

    def check(self) -> str | None:
        return check_name(self.key) or _bad_u64("amount", self.amount)


@dataclass(frozen=True, slots=True)
class CounterSub:
    """Unsigned subtract (decr = sub 1), saturating at 0."""

    key: str
    amount: int

    def check(self) -> str | None:
        return check_name(self.key) or _bad_u64("amount", self.amount)


@dataclass(frozen=True, slots=True)
class CounterSet:
    key: str
    value: int

    def check(self) -> str | None:
        return check_name(self.key) or _bad_u64("value", self.value)


@dataclass(frozen=True, slots=True)
class CounterCas:
    key: str
    expected: int
    new_value: int

    def check(self) -> str | None:
        return (
            check_name(self.key)
            or _bad_u64("expected", self.expected)
            or _bad_u64("new_value", self.new_value)
        )


@dataclass(frozen=True, slots=True)
class SignedCounterAdd:
    """Signed add (a negative amount subtracts), saturating at the i64 bounds."""

    key: str
    amount: int

    def check(self) -> str | None:
        if not _in_i64(self.amount):
            return f"amount must be between {I64_MIN} and {I64_MAX}"
        return check_name(self.key)


CounterOp = CounterAdd | CounterSub | CounterSet | CounterCas | SignedCounterAdd


@dataclass(frozen=True, slots=True)
class CounterResult:
    """`value` is the counter after the operation (the actual value on a failed cas; None when the
    operation was rejected)."""

    is_success: bool
    value: int | None = None
    error: str | None = None


# ------------------------------------------------------------------------------------------ reading --
def _parse(reader: KvReader, key: str, signed: bool) -> int:
    raw = reader.get(storage_key(key))
    if raw is None:
        return 0
    kind = "i64" if signed else "u64"
    corrupt = f"corrupted data in key '{storage_key(key)}': not a valid {kind}"
    text = raw.decode("ascii", "replace")
    digits = text[1:] if signed and text.startswith("-") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        raise Rejected(corrupt)
    n = int(text)
    if not (_in_i64(n) if signed else _in_u64(n)):
        raise Rejected(corrupt)
    return n


def get(reader: KvReader, key: str, *, signed: bool = False) -> CounterResult:
    """The current value (0 if missing); a query, served after the node's read barrier."""
    error = check_name(key)
    if error is not None:
        return CounterResult(is_success=False, error=error)
    try:
        return CounterResult(is_success=True, value=_parse(reader, key, signed))
    except Rejected as err:
        return CounterResult(is_success=False, error=err.message)


# ------------------------------------------------------------------------------------------ applying --
def _store(txn: KvTxn, key: str, value: int) -> CounterResult:
    txn.put(storage_key(key), str(value).encode())
    return CounterResult(is_success=True, value=value)


def apply(txn: KvTxn, op: CounterOp, now_ms: int) -> CounterResult:
    del now_ms  # counters do not depend on time
    if isinstance(op, SignedCounterAdd):
        current = _parse(txn, op.key, signed=True)
        return _store(txn, op.key, max(I64_MIN, min(I64_MAX, current + op.amount)))
    current = _parse(txn, op.key, signed=False)
    if isinstance(op, CounterAdd):
        return _store(txn, op.key, min(U64_MAX, current + op.amount))
    if isinstance(op, CounterSub):
        return _store(txn, op.key, max(0, current - op.amount))
    if isinstance(op, CounterSet):
        return _store(txn, op.key, op.value)
    if current != op.expected:
        return CounterResult(is_success=False, value=current, error=CAS_FAILED)
    return _store(txn, op.key, op.new_value)


def rejected(message: str) -> CounterResult:
    return CounterResult(is_success=False, error=message)


LAYER: Final[Layer[CounterOp, CounterResult]] = Layer(
    name="counter",
    ops=(CounterAdd, CounterSub, CounterSet, CounterCas, SignedCounterAdd),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={
        "CounterGet": lambda reader, _now_ms, key: get(reader, key),
        "SignedCounterGet": lambda reader, _now_ms, key: get(reader, key, signed=True),
    },
)

__all__ = [
    "LAYER",
    "PREFIX",
    "CounterAdd",
    "CounterCas",
    "CounterOp",
    "CounterResult",
    "CounterSet",
    "CounterSub",
    "SignedCounterAdd",
    "check_name",
    "get",
    "storage_key",
]
