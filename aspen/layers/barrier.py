"""Barriers (reference §7.7, library semantics): `count` participants enter, and all are released
together; then they leave, and the last one out completes the round. One JSON record in
`__coord:barrier:<name>`: `{required, participants[], phase, round, created_at_ms}`.

Invariants:
- Phases of one round: `waiting` (fewer than `required` in) → `ready` (everyone may proceed) →
  `leaving` (someone left; no one may enter) → `completed` (the last one left). An enter on a
  missing or completed barrier starts the next round (`round` + 1), with that enter's `count` as
  `required`; later enters of the round keep it.
- Enter and leave are idempotent for a participant within a round (a retried request changes
  nothing), so the node and the client may re-issue them while waiting.
- An enter during `leaving` changes nothing (`entered` false): the caller waits for the round to
  complete and enters the next one. A leave of a participant that is not in the barrier is an
  error while the round is `waiting`/`ready`, and a no-op otherwise.
- Waiting (enter until ready, leave until completed) happens in the node, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Layer, check_user_key
from aspen.layers.records import check_id, check_range, dump, load

PREFIX: Final = "__coord:barrier:"
MAX_PARTICIPANTS: Final = 1024
WAITING, READY, LEAVING, COMPLETED = "waiting", "ready", "leaving", "completed"


def storage_key(name: str) -> str:
    return PREFIX + name


@dataclass(frozen=True, slots=True)
class BarrierEnter:
    name: str
    participant: str
    count: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.name)
            or check_id("participant id", self.participant)
            or check_range("count", self.count, 1, MAX_PARTICIPANTS)
        )


@dataclass(frozen=True, slots=True)
class BarrierLeave:
    name: str
    participant: str

    def check(self) -> str | None:
        return check_user_key(PREFIX, self.name) or check_id("participant id", self.participant)


BarrierOp = BarrierEnter | BarrierLeave


@dataclass(frozen=True, slots=True)
class BarrierResult:
    is_success: bool
    current_count: int = 0
    required_count: int = 0
    phase: str = WAITING
    round: int = 0
    #: Whether the participant is in the barrier's current round after this operation.
    is_member: bool = False
    error: str | None = None


def _read(reader: KvReader, name: str) -> dict[str, Any] | None:
    key = storage_key(name)
    record = load(reader, key)
    if record is not None and not (
        type(record.get("required")) is int
        and type(record.get("round")) is int
        and record.get("phase") in (WAITING, READY, LEAVING, COMPLETED)
        and isinstance(record.get("participants"), list)
        and all(type(p) is str for p in record["participants"])
    ):
        raise Rejected(f"corrupted data in key '{key}': not a valid barrier")
    return record


def _result(record: dict[str, Any], participant: str | None = None) -> BarrierResult:
    return BarrierResult(
        True,
        current_count=len(record["participants"]),
        required_count=record["required"],
        phase=record["phase"],
        round=record["round"],
        is_member=participant in record["participants"],
    )


def _enter(txn: KvTxn, op: BarrierEnter, now_ms: int) -> BarrierResult:
    record = _read(txn, op.name)
    if record is None or record["phase"] == COMPLETED:
        record = {
            "required": op.count,
            "participants": [op.participant],
            "phase": READY if op.count <= 1 else WAITING,
            "round": (record["round"] if record else 0) + 1,
            "created_at_ms": now_ms,
        }
    elif record["phase"] == LEAVING or op.participant in record["participants"]:
        return _result(record, op.participant)
    else:
        if len(record["participants"]) >= MAX_PARTICIPANTS:
            raise Rejected(f"barrier has {MAX_PARTICIPANTS} participants")
        record["participants"].append(op.participant)
        if len(record["participants"]) >= record["required"]:
            record["phase"] = READY
    txn.put(storage_key(op.name), dump(record))
    return _result(record, op.participant)


def _leave(txn: KvTxn, op: BarrierLeave) -> BarrierResult:
    record = _read(txn, op.name)
    if record is None:
        return BarrierResult(True, phase=COMPLETED)
    if op.participant not in record["participants"]:
        if record["phase"] in (WAITING, READY):
            raise Rejected(f"participant '{op.participant}' is not in barrier '{op.name}'")
        return _result(record, op.participant)
    record["participants"].remove(op.participant)
    record["phase"] = LEAVING if record["participants"] else COMPLETED
    txn.put(storage_key(op.name), dump(record))
    return _result(record, op.participant)


def apply(txn: KvTxn, op: BarrierOp, now_ms: int) -> BarrierResult:
    if isinstance(op, BarrierEnter):
        return _enter(txn, op, now_ms)
    return _leave(txn, op)


def status(reader: KvReader, name: str) -> BarrierResult:
    """The barrier's round, phase and counts; an unknown barrier is `0/0 waiting`."""
    error = check_user_key(PREFIX, name)
    if error is not None:
        return BarrierResult(False, error=error)
    try:
        record = _read(reader, name)
    except Rejected as err:
        return BarrierResult(False, error=err.message)
    return BarrierResult(True) if record is None else _result(record)


def rejected(message: str) -> BarrierResult:
    return BarrierResult(False, error=message)


LAYER: Final[Layer[BarrierOp, BarrierResult]] = Layer(
    name="barrier", ops=(BarrierEnter, BarrierLeave), apply=apply, rejected=rejected, prefixes=(PREFIX,)
)

__all__ = [
    "COMPLETED",
    "LAYER",
    "LEAVING",
    "PREFIX",
    "READY",
    "WAITING",
    "BarrierEnter",
    "BarrierLeave",
    "BarrierOp",
    "BarrierResult",
    "status",
    "storage_key",
]
