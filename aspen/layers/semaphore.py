"""Semaphores, as the original Aspen's coordination library defines them: a capacity of permits
shared by TTL'd holders, one JSON record in `__coord:sem:<name>`:
`{"capacity_permits": c, "holders": [{"holder_id","permits","acquired_at_ms","deadline_ms"}]}`.

Invariants:
- The capacity is fixed by the first acquirer; later requests' capacity is ignored.
- A holder whose `deadline_ms` is not after the command's `now_ms` is expired: its permits count
  as available again and it is dropped from the record by the next write. Expiry is judged only with
  the command's `now_ms` (the leader's clock), never a replica's.
- Σ permits of live holders ≤ capacity, after every operation; at most 256 holders.
- try-acquire by a live holder is idempotent: its deadline is refreshed (now + ttl) and it keeps
  the permits it holds (`permits_acquired` = those permits). Otherwise it needs `permits` ≤
  available; if not, nothing is written and `retry_after_ms` says when the earliest holder expires.
- release(permits=0) releases all of the holder's permits; releasing fewer keeps the holder with
  the rest; releasing for an unknown holder is a no-op success (release is safe to repeat).
- Blocking acquire waits in the node, never here: `acquire_blocked` tells it, from the applied
  state, whether a try-acquire can succeed now (else it waits for the record to change or the
  earliest holder to expire, proposing nothing meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key
from aspen.layers.records import check_id, check_range, dump, load

PREFIX: Final = "__coord:sem:"
MAX_HOLDERS: Final = 256
MAX_CAPACITY: Final = 2**32
MAX_TTL_MS: Final = 86_400_000


def storage_key(name: str) -> str:
    return PREFIX + name


@dataclass(frozen=True, slots=True)
class SemaphoreTryAcquire:
    name: str
    holder_id: str
    permits: int
    capacity_permits: int
    ttl_ms: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.name)
            or check_id("holder id", self.holder_id)
            or check_range("capacity", self.capacity_permits, 1, MAX_CAPACITY)
            or check_range("permits", self.permits, 1, MAX_CAPACITY)
            or check_range("ttl_ms", self.ttl_ms, 1, MAX_TTL_MS)
        )


@dataclass(frozen=True, slots=True)
class SemaphoreRelease:
    """Release `permits` of the holder's permits; 0 = all of them."""

    name: str
    holder_id: str
    permits: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.name)
            or check_id("holder id", self.holder_id)
            or check_range("permits", self.permits, 0, MAX_CAPACITY)
        )


SemaphoreOp = SemaphoreTryAcquire | SemaphoreRelease


@dataclass(frozen=True, slots=True)
class SemaphoreResult:
    is_success: bool
    permits_acquired: int | None = None
    available: int | None = None
    capacity_permits: int | None = None
    retry_after_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _State:
    capacity: int
    #: Live holders only: holder_id -> record.
    holders: dict[str, dict[str, Any]]

    @property
    def available(self) -> int:
        return max(0, self.capacity - sum(int(h["permits"]) for h in self.holders.values()))


def _read(reader: KvReader, name: str, now_ms: int) -> _State | None:
    key = storage_key(name)
    record = load(reader, key)
    if record is None:
        return None
    capacity = record.get("capacity_permits")
    holders = record.get("holders")
    fields = ("permits", "acquired_at_ms", "deadline_ms")
    if not (
        type(capacity) is int
        and isinstance(holders, list)
        and all(
            isinstance(h, dict)
            and type(h.get("holder_id")) is str
            and all(type(h.get(f)) is int for f in fields)
            for h in holders
        )
    ):
        raise Rejected(f"corrupted data in key '{key}': not a valid semaphore")
    return _State(capacity, {h["holder_id"]: h for h in holders if h["deadline_ms"] > now_ms})


def _write(txn: KvTxn, name: str, state: _State) -> None:
    holders = [state.holders[h] for h in sorted(state.holders)]
    txn.put(storage_key(name), dump({"capacity_permits": state.capacity, "holders": holders}))


def _retry_after(state: _State, now_ms: int) -> int:
    soonest = min((int(h["deadline_ms"]) for h in state.holders.values()), default=now_ms + 1)
    return max(1, soonest - now_ms)


def _try_acquire(txn: KvTxn, op: SemaphoreTryAcquire, now_ms: int) -> SemaphoreResult:
    state = _read(txn, op.name, now_ms) or _State(op.capacity_permits, {})
    deadline = now_ms + op.ttl_ms
    held = state.holders.get(op.holder_id)
    if held is not None:
        held = {**held, "deadline_ms": deadline}
        state.holders[op.holder_id] = held
        _write(txn, op.name, state)
        return SemaphoreResult(True, held["permits"], state.available, state.capacity)
    if op.permits > state.capacity:
        return SemaphoreResult(
            False,
            0,
            state.available,
            state.capacity,
            error=f"requested {op.permits} permits exceed the capacity of {state.capacity}",
        )
    if op.permits > state.available:
        return SemaphoreResult(False, 0, state.available, state.capacity, _retry_after(state, now_ms))
    if len(state.holders) >= MAX_HOLDERS:
        return SemaphoreResult(
            False, 0, state.available, state.capacity, error=f"semaphore has {MAX_HOLDERS} holders"
        )
    state.holders[op.holder_id] = {
        "holder_id": op.holder_id,
        "permits": op.permits,
        "acquired_at_ms": now_ms,
        "deadline_ms": deadline,
    }
    _write(txn, op.name, state)
    return SemaphoreResult(True, op.permits, state.available, state.capacity)


def _release(txn: KvTxn, op: SemaphoreRelease, now_ms: int) -> SemaphoreResult:
    state = _read(txn, op.name, now_ms)
    if state is None:
        return SemaphoreResult(True, 0, 0, 0)
    held = state.holders.get(op.holder_id)
    if held is not None:
        if op.permits == 0 or op.permits >= held["permits"]:
            del state.holders[op.holder_id]
        else:
            state.holders[op.holder_id] = {**held, "permits": held["permits"] - op.permits}
    _write(txn, op.name, state)  # also drops expired holders
    return SemaphoreResult(True, 0, state.available, state.capacity)


def apply(txn: KvTxn, op: SemaphoreOp, now_ms: int) -> SemaphoreResult:
    if isinstance(op, SemaphoreTryAcquire):
        return _try_acquire(txn, op, now_ms)
    return _release(txn, op, now_ms)


def status(reader: KvReader, name: str, now_ms: int) -> SemaphoreResult:
    """(available, capacity) as of `now_ms`; an unknown semaphore is a success with 0/0, as in the
    original Aspen."""
    error = check_user_key(PREFIX, name)
    if error is not None:
        return SemaphoreResult(False, error=error)
    try:
        state = _read(reader, name, now_ms)
    except Rejected as err:
        return SemaphoreResult(False, error=err.message)
    if state is None:
        return SemaphoreResult(True, 0, 0, 0)
    return SemaphoreResult(True, 0, state.available, state.capacity)


def rejected(message: str) -> SemaphoreResult:
    return SemaphoreResult(False, error=message)


#: The error of a blocking acquire whose wait ran out (the client re-issues it while time is left).
ACQUIRE_TIMEOUT: Final = "semaphore acquire timeout"


def acquire_blocked(reader: KvReader, now_ms: int, op: SemaphoreTryAcquire) -> Blocked | None:
    """Blocked while the live holders leave fewer than `op.permits` available (a holder that is
    already in, a corrupt record or more permits than the capacity are for the try to answer)."""
    try:
        state = _read(reader, op.name, now_ms)
    except Rejected:
        return None
    if state is None or op.holder_id in state.holders or op.permits > state.capacity:
        return None
    if op.permits <= state.available:
        return None
    retry = _retry_after(state, now_ms)
    timed_out = SemaphoreResult(False, 0, state.available, state.capacity, retry, ACQUIRE_TIMEOUT)
    return Blocked((storage_key(op.name),), timed_out, now_ms + retry)


LAYER: Final[Layer[SemaphoreOp, SemaphoreResult]] = Layer(
    name="semaphore",
    ops=(SemaphoreTryAcquire, SemaphoreRelease),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={"SemaphoreStatus": lambda reader, now_ms, name: status(reader, name, now_ms)},
    waits={"SemaphoreTryAcquire": Wait(acquire_blocked)},
)

__all__ = [
    "ACQUIRE_TIMEOUT",
    "LAYER",
    "MAX_HOLDERS",
    "PREFIX",
    "SemaphoreOp",
    "SemaphoreRelease",
    "SemaphoreResult",
    "SemaphoreTryAcquire",
    "acquire_blocked",
    "status",
    "storage_key",
]
