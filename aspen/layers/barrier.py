"""Barriers, as the original Aspen's coordination library defines them: `count` participants enter,
and all are released together; then they leave, and the last one out completes the round. One JSON
record in `__coord:barrier:<name>`: `{required, participants[], phase, round, created_at_ms}`.

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
- Waiting (enter until ready, leave until completed) happens in the node, never here: the node
  proposes the enter or leave, then `enter_settled` / `leave_settled` tell it from the applied
  state when the round is ready or complete (it parks on the record meanwhile, proposing nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key
from aspen.layers.records import check_id, check_range, dump, load

PREFIX: Final = "__coord:barrier:"
MAX_PARTICIPANTS: Final = 1024
WAITING, READY, LEAVING, COMPLETED = "waiting", "ready", "leaving", "completed"


def storage_key(name: str) -> str:
    return PREFIX + name


@dataclass(frozen=True, slots=True)
class BarrierEnter:
    name: str
    participant_id: str
    required_count: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.name)
            or check_id("participant id", self.participant_id)
            or check_range("count", self.required_count, 1, MAX_PARTICIPANTS)
        )


@dataclass(frozen=True, slots=True)
class BarrierLeave:
    name: str
    participant_id: str

    def check(self) -> str | None:
        return check_user_key(PREFIX, self.name) or check_id("participant id", self.participant_id)


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
            "required": op.required_count,
            "participants": [op.participant_id],
            "phase": READY if op.required_count <= 1 else WAITING,
            "round": (record["round"] if record else 0) + 1,
            "created_at_ms": now_ms,
        }
    elif record["phase"] == LEAVING or op.participant_id in record["participants"]:
        return _result(record, op.participant_id)
    else:
        if len(record["participants"]) >= MAX_PARTICIPANTS:
            raise Rejected(f"barrier has {MAX_PARTICIPANTS} participants")
        record["participants"].append(op.participant_id)
        if len(record["participants"]) >= record["required"]:
            record["phase"] = READY
    txn.put(storage_key(op.name), dump(record))
    return _result(record, op.participant_id)


def _leave(txn: KvTxn, op: BarrierLeave) -> BarrierResult:
    record = _read(txn, op.name)
    if record is None:
        return BarrierResult(True, phase=COMPLETED)
    if op.participant_id not in record["participants"]:
        if record["phase"] in (WAITING, READY):
            raise Rejected(f"participant '{op.participant_id}' is not in barrier '{op.name}'")
        return _result(record, op.participant_id)
    record["participants"].remove(op.participant_id)
    record["phase"] = LEAVING if record["participants"] else COMPLETED
    txn.put(storage_key(op.name), dump(record))
    return _result(record, op.participant_id)


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


#: The errors of a wait that ran out (the client re-issues the request while time is left).
ENTER_TIMEOUT: Final = "barrier enter timeout"
LEAVE_TIMEOUT: Final = "barrier leave timeout"


def _waiting(reader: KvReader, name: str, error: str) -> Blocked:
    now = status(reader, name)
    return Blocked((storage_key(name),), replace(now, is_success=False, error=error))


def enter_blocked(reader: KvReader, now_ms: int, op: BarrierEnter) -> Blocked | None:
    """An enter waits without proposing while the previous round is still leaving."""
    try:
        record = _read(reader, op.name)
    except Rejected:
        return None
    if record is None or record["phase"] != LEAVING or op.participant_id in record["participants"]:
        return None
    return _waiting(reader, op.name, ENTER_TIMEOUT)


def enter_settled(reader: KvReader, now_ms: int, op: BarrierEnter, entered: BarrierResult) -> Any:
    """Done once the round we entered is ready (or moved on past it)."""
    if not entered.is_success or entered.phase == READY:
        return entered
    if not entered.is_member:
        return None  # the previous round is leaving: enter the next one once it completed
    now = status(reader, op.name)
    if not now.is_success or now.round != entered.round or now.phase != WAITING:
        return now
    return _waiting(reader, op.name, ENTER_TIMEOUT)


def leave_settled(reader: KvReader, now_ms: int, op: BarrierLeave, left: BarrierResult) -> Any:
    """Done once everyone left the round we left (it completed, or a new one began)."""
    if not left.is_success or left.phase == COMPLETED:
        return left
    now = status(reader, op.name)
    if not now.is_success:
        return now
    if now.round != left.round or now.phase == COMPLETED:
        return BarrierResult(True, 0, now.required_count, COMPLETED, left.round)
    return _waiting(reader, op.name, LEAVE_TIMEOUT)


LAYER: Final[Layer[BarrierOp, BarrierResult]] = Layer(
    name="barrier",
    ops=(BarrierEnter, BarrierLeave),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={"BarrierStatus": lambda reader, now_ms, name: status(reader, name)},
    waits={
        "BarrierEnter": Wait(enter_blocked, settle=enter_settled),
        "BarrierLeave": Wait(lambda reader, now_ms, op: None, settle=leave_settled),
    },
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
