"""Read-write locks with writer preference, as the original Aspen's coordination library defines
them, stored as JSON in `__coord:rwlock:<name>`: `{mode, fencing_token, writer: {holder_id,
fencing_token, deadline_ms} | null, readers: [{holder_id, deadline_ms}], pending_writers:
[{holder_id, deadline_ms}]}`.

Invariants:
- Either one live writer and no live reader, or any number (≤ 128) of live readers and no writer.
  Every holder has a deadline (`now_ms + ttl_ms`, the command's time); expired holders are dropped
  by every operation before it decides, identically on every replica.
- Writer preference: a writer that waits (a blocking `write`) registers in `pending_writers` with a
  deadline equal to the end of its wait; while a live pending writer exists, new readers are
  refused ("write lock pending"). The registration is written even though that try failed — the
  one failure that writes — and it expires by itself, so a crashed waiter cannot starve readers
  (the original library kept a bare count of pending writers, which a crashed waiter could leave
  raised for good). At most 64 pending writers.
- Writer fencing tokens strictly increase per name (the counter stays in the record when the lock
  is free). Downgrade turns the writer into a reader and keeps the token: no other writer can have
  run in between. Release-write and downgrade need the writer's holder and token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.kv.records import parse_record
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key
from aspen.layers.lock import check_holder, check_token, check_ttl, check_wait

PREFIX: Final = "__coord:rwlock:"
U64_MAX: Final = 2**64 - 1
MAX_READERS: Final = 128
MAX_PENDING_WRITERS: Final = 64

Mode = Literal["free", "read", "write"]


def storage_key(name: str) -> str:
    return PREFIX + name


# -------------------------------------------------------------------------------------- the record --
@dataclass(frozen=True, slots=True)
class Holder:
    holder_id: str
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class Writer:
    holder_id: str
    fencing_token: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class RwState:
    fencing_token: int = 0
    writer: Writer | None = None
    readers: tuple[Holder, ...] = field(default=())
    pending_writers: tuple[Holder, ...] = field(default=())

    @property
    def mode(self) -> Mode:
        return "write" if self.writer else "read" if self.readers else "free"

    def live(self, now_ms: int) -> RwState:
        """This state without the holders and waiters whose deadline passed."""
        writer = self.writer if self.writer and now_ms <= self.writer.deadline_ms else None
        return replace(
            self,
            writer=writer,
            readers=tuple(r for r in self.readers if now_ms <= r.deadline_ms),
            pending_writers=tuple(p for p in self.pending_writers if now_ms <= p.deadline_ms),
        )

    def encode(self) -> bytes:
        w = self.writer
        doc = {
            "mode": self.mode,
            "fencing_token": self.fencing_token,
            "writer": None
            if w is None
            else {"holder_id": w.holder_id, "fencing_token": w.fencing_token, "deadline_ms": w.deadline_ms},
            "readers": [{"holder_id": r.holder_id, "deadline_ms": r.deadline_ms} for r in self.readers],
            "pending_writers": [
                {"holder_id": p.holder_id, "deadline_ms": p.deadline_ms} for p in self.pending_writers
            ],
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def _u64(n: object) -> bool:
    return type(n) is int and 0 <= n <= U64_MAX


def _holders(items: Any) -> tuple[Holder, ...]:
    out = tuple(Holder(i["holder_id"], i["deadline_ms"]) for i in items)
    if any(type(h.holder_id) is not str or not _u64(h.deadline_ms) for h in out):
        raise TypeError("bad holder")
    return out


def read_state(reader: KvReader, name: str) -> RwState:
    raw = reader.get(storage_key(name))
    if raw is None:
        return RwState()
    doc = parse_record(storage_key(name), raw, "a rwlock record")
    try:
        w = doc["writer"]
        writer = None if w is None else Writer(w["holder_id"], w["fencing_token"], w["deadline_ms"])
        if writer is not None and (
            type(writer.holder_id) is not str
            or not _u64(writer.fencing_token)
            or not _u64(writer.deadline_ms)
        ):
            raise TypeError("bad writer")
        state = RwState(
            doc["fencing_token"], writer, _holders(doc["readers"]), _holders(doc["pending_writers"])
        )
        if not _u64(state.fencing_token):
            raise TypeError("bad token")
    except (KeyError, TypeError, ValueError):  # any JSON object an older node or a restored backup left
        raise Rejected(f"corrupted data in key '{storage_key(name)}': not a rwlock record") from None
    return state


# -------------------------------------------------------------------------------------- operations --
def _check(name: str, holder_id: str) -> str | None:
    return check_user_key(PREFIX, name) or check_holder(holder_id)


@dataclass(frozen=True, slots=True)
class RwLockTryRead:
    name: str
    holder_id: str
    ttl_ms: int

    def check(self) -> str | None:
        return _check(self.name, self.holder_id) or check_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class RwLockTryWrite:
    name: str
    holder_id: str
    ttl_ms: int
    #: 0: a plain try. > 0: on failure, wait registered as a pending writer for this long.
    wait_ms: int

    def check(self) -> str | None:
        return (
            _check(self.name, self.holder_id)
            or check_ttl(self.ttl_ms)
            or (check_wait(self.wait_ms) if self.wait_ms else None)
        )


@dataclass(frozen=True, slots=True)
class RwLockReleaseRead:
    name: str
    holder_id: str

    def check(self) -> str | None:
        return _check(self.name, self.holder_id)


@dataclass(frozen=True, slots=True)
class RwLockReleaseWrite:
    name: str
    holder_id: str
    fencing_token: int

    def check(self) -> str | None:
        return _check(self.name, self.holder_id) or check_token(self.fencing_token)


@dataclass(frozen=True, slots=True)
class RwLockDowngrade:
    name: str
    holder_id: str
    fencing_token: int
    ttl_ms: int

    def check(self) -> str | None:
        return _check(self.name, self.holder_id) or check_token(self.fencing_token) or check_ttl(self.ttl_ms)


RwLockOp = RwLockTryRead | RwLockTryWrite | RwLockReleaseRead | RwLockReleaseWrite | RwLockDowngrade


@dataclass(frozen=True, slots=True)
class RwLockResult:
    """The lock after the operation (or as it stands, on a failure). `fencing_token` is the
    writer's (the caller's after a write acquire or downgrade), else null."""

    is_success: bool
    mode: Mode | None = None
    fencing_token: int | None = None
    deadline_ms: int | None = None
    reader_count: int | None = None
    writer_holder: str | None = None
    error: str | None = None


def _result(
    state: RwState,
    ok: bool,
    error: str | None = None,
    *,
    token: int | None = None,
    deadline: int | None = None,
) -> RwLockResult:
    w = state.writer
    return RwLockResult(
        is_success=ok,
        mode=state.mode,
        fencing_token=token if token is not None else (w.fencing_token if w else None),
        deadline_ms=deadline if deadline is not None else (w.deadline_ms if w else None),
        reader_count=len(state.readers),
        writer_holder=w.holder_id if w else None,
        error=error,
    )


# ---------------------------------------------------------------------------------------- applying --
def _try_read(txn: KvTxn, s: RwState, op: RwLockTryRead, now_ms: int) -> RwLockResult:
    if s.writer is not None:
        return _result(s, False, "write lock held")
    if any(p.holder_id != op.holder_id for p in s.pending_writers):
        return _result(s, False, "write lock pending")
    others = tuple(r for r in s.readers if r.holder_id != op.holder_id)
    if len(others) >= MAX_READERS:
        return _result(s, False, f"too many readers (max {MAX_READERS})")
    me = Holder(op.holder_id, now_ms + op.ttl_ms)
    new = replace(s, readers=(*others, me))
    txn.put(storage_key(op.name), new.encode())
    return _result(new, True, deadline=me.deadline_ms)


def _try_write(txn: KvTxn, s: RwState, op: RwLockTryWrite, now_ms: int) -> RwLockResult:
    if s.writer is not None and s.writer.holder_id == op.holder_id:
        return _result(s, False, "write lock already held")
    error = "write lock held" if s.writer else "readers hold the lock" if s.readers else None
    if error is not None:
        pending = tuple(p for p in s.pending_writers if p.holder_id != op.holder_id)
        if op.wait_ms and len(pending) < MAX_PENDING_WRITERS:
            waiting = replace(s, pending_writers=(*pending, Holder(op.holder_id, now_ms + op.wait_ms)))
            txn.put(storage_key(op.name), waiting.encode())
        return _result(s, False, error)
    if s.fencing_token >= U64_MAX:
        raise Rejected(f"fencing tokens of rwlock '{op.name}' are exhausted")
    writer = Writer(op.holder_id, s.fencing_token + 1, now_ms + op.ttl_ms)
    pending = tuple(p for p in s.pending_writers if p.holder_id != op.holder_id)
    new = RwState(writer.fencing_token, writer, (), pending)
    txn.put(storage_key(op.name), new.encode())
    return _result(new, True)


def _writer_error(s: RwState, holder_id: str, token: int) -> str | None:
    if s.writer is None:
        return "no write lock held"
    if s.writer.holder_id != holder_id:
        return f"write lock held by '{s.writer.holder_id}', not '{holder_id}'"
    if s.writer.fencing_token != token:
        return f"fencing token mismatch: expected {s.writer.fencing_token}, got {token}"
    return None


def apply(txn: KvTxn, op: RwLockOp, now_ms: int) -> RwLockResult:
    s = read_state(txn, op.name).live(now_ms)
    if isinstance(op, RwLockTryRead):
        return _try_read(txn, s, op, now_ms)
    if isinstance(op, RwLockTryWrite):
        return _try_write(txn, s, op, now_ms)
    if isinstance(op, RwLockReleaseRead):
        if all(r.holder_id != op.holder_id for r in s.readers):
            return _result(s, False, f"reader '{op.holder_id}' not found")
        new = replace(s, readers=tuple(r for r in s.readers if r.holder_id != op.holder_id))
        txn.put(storage_key(op.name), new.encode())
        return _result(new, True)
    error = _writer_error(s, op.holder_id, op.fencing_token)
    if error is not None:
        return _result(s, False, error)
    if isinstance(op, RwLockReleaseWrite):
        new = replace(s, writer=None)
        txn.put(storage_key(op.name), new.encode())
        return _result(new, True)
    me = Holder(op.holder_id, now_ms + op.ttl_ms)
    new = replace(s, writer=None, readers=(me,))
    txn.put(storage_key(op.name), new.encode())
    return _result(new, True, token=op.fencing_token, deadline=me.deadline_ms)


def status(reader: KvReader, name: str, now_ms: int) -> RwLockResult:
    """The lock as it stands at `now_ms` (a query: the serving node's clock; nothing is written)."""
    error = check_user_key(PREFIX, name)
    if error is not None:
        return RwLockResult(is_success=False, error=error)
    try:
        return _result(read_state(reader, name).live(now_ms), True)
    except Rejected as err:
        return RwLockResult(is_success=False, error=err.message)


def rejected(message: str) -> RwLockResult:
    return RwLockResult(is_success=False, error=message)


def _blocked(
    reader: KvReader, name: str, now_ms: int, kind: str, free: Callable[[RwState], bool]
) -> Blocked | None:
    try:
        s = read_state(reader, name).live(now_ms)
    except Rejected:  # a corrupt record: the attempt reports it
        return None
    if free(s):
        return None
    # Time alone frees it when the writer, the readers or the writers waiting ahead expire.
    deadlines = [h.deadline_ms for h in (*s.readers, *s.pending_writers)]
    if s.writer is not None:
        deadlines.append(s.writer.deadline_ms)
    out = replace(_result(s, False), error=f"operation timed out: rwlock {kind} acquisition")
    return Blocked((storage_key(name),), out, min(deadlines, default=now_ms) + 1)


def read_blocked(reader: KvReader, now_ms: int, op: RwLockTryRead) -> Blocked | None:
    """Blocked while a writer holds the lock or another writer waits for it."""
    return _blocked(
        reader, op.name, now_ms, "read",
        lambda s: s.writer is None and all(p.holder_id == op.holder_id for p in s.pending_writers),
    )  # fmt: skip


def write_blocked(reader: KvReader, now_ms: int, op: RwLockTryWrite) -> Blocked | None:
    """Blocked while anyone holds the lock (a writer that holds it already: the attempt says so)."""

    def free(s: RwState) -> bool:
        return s.writer.holder_id == op.holder_id if s.writer is not None else not s.readers

    return _blocked(reader, op.name, now_ms, "write", free)


LAYER: Final[Layer[RwLockOp, RwLockResult]] = Layer(
    name="rwlock",
    ops=(RwLockTryRead, RwLockTryWrite, RwLockReleaseRead, RwLockReleaseWrite, RwLockDowngrade),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={"RWLockStatus": lambda reader, now_ms, name: status(reader, name, now_ms)},
    # A waiting writer is proposed once at once: that registers it as pending, which holds off new
    # readers for the rest of its wait (`wait_ms`, filled in with the time left).
    waits={
        "RwLockTryRead": Wait(read_blocked, check_wait),
        "RwLockTryWrite": Wait(write_blocked, check_wait, announce=True),
    },
)

__all__ = [
    "LAYER",
    "MAX_PENDING_WRITERS",
    "MAX_READERS",
    "PREFIX",
    "RwLockDowngrade",
    "RwLockOp",
    "RwLockReleaseRead",
    "RwLockReleaseWrite",
    "RwLockResult",
    "RwLockTryRead",
    "RwLockTryWrite",
    "RwState",
    "read_state",
    "status",
    "storage_key",
]
