"""Sequences: unique, strictly increasing u64 IDs, stored as the highest ID handed out so far
(decimal text) in `__coord:seq:<key>`.

Invariants:
- IDs start at 1 and are never handed out twice: `reserve(n)` on stored value `c` returns the
  range start `c+1`, stores `c+n`, and the range is `[c+1, c+n]`. `next` is `reserve(1)`, so
  successive `next` calls give 1, 2, 3, ... (the original Aspen reserved 100 IDs per `next` and
  wasted 99 of them: 1, 101, 201, ...).
- A reservation that would pass 2**64-1 fails with `sequence exhausted` and changes nothing.
- `current` is the next ID that would be handed out (`stored+1`, 1 if missing); it never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Layer, check_user_key

PREFIX: Final = "__coord:seq:"
U64_MAX: Final = 2**64 - 1
EXHAUSTED: Final = "sequence exhausted"


def storage_key(key: str) -> str:
    return PREFIX + key


@dataclass(frozen=True, slots=True)
class SequenceReserve:
    key: str
    count: int

    def check(self) -> str | None:
        if not 1 <= self.count <= U64_MAX:
            return f"count must be between 1 and {U64_MAX}"
        return check_user_key(PREFIX, self.key)


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """`value`: the first reserved ID (reserve/next) or the next unreserved ID (current)."""

    is_success: bool
    value: int | None = None
    error: str | None = None


def _stored(reader: KvReader, key: str) -> int:
    raw = reader.get(storage_key(key))
    if raw is None:
        return 0
    text = raw.decode("ascii", "replace")
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) > U64_MAX:
        raise Rejected(f"corrupted data in key '{storage_key(key)}': not a valid u64")
    return int(text)


def current(reader: KvReader, key: str) -> SequenceResult:
    """The next ID `next` would return; a query, served after the node's read barrier."""
    error = check_user_key(PREFIX, key)
    if error is not None:
        return SequenceResult(is_success=False, error=error)
    try:
        stored = _stored(reader, key)
    except Rejected as err:
        return SequenceResult(is_success=False, error=err.message)
    if stored == U64_MAX:
        return SequenceResult(is_success=False, error=EXHAUSTED)
    return SequenceResult(is_success=True, value=stored + 1)


def apply(txn: KvTxn, op: SequenceReserve, now_ms: int) -> SequenceResult:
    del now_ms  # sequences do not depend on time
    stored = _stored(txn, op.key)
    if stored + op.count > U64_MAX:
        return SequenceResult(is_success=False, error=EXHAUSTED)
    txn.put(storage_key(op.key), str(stored + op.count).encode())
    return SequenceResult(is_success=True, value=stored + 1)


def rejected(message: str) -> SequenceResult:
    return SequenceResult(is_success=False, error=message)


LAYER: Final[Layer[SequenceReserve, SequenceResult]] = Layer(
    name="sequence",
    ops=(SequenceReserve,),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={"SequenceCurrent": lambda reader, _now_ms, key: current(reader, key)},
)

__all__ = ["LAYER", "PREFIX", "SequenceReserve", "SequenceResult", "current", "storage_key"]
