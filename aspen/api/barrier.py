"""Wire models of the barrier requests (reference §4.3 94-96, §7.7); all answer `BarrierResult`."""

from __future__ import annotations

from typing import Literal

from aspen.api.wire import U64, WireModel

ENTER_TIMEOUT = "barrier enter timeout"
LEAVE_TIMEOUT = "barrier leave timeout"


class BarrierEnter(WireModel):
    """Enter and wait (up to `timeout_ms`) until `required_count` participants are in."""

    type: Literal["BarrierEnter"] = "BarrierEnter"
    name: str
    participant_id: str
    required_count: U64
    timeout_ms: U64 = 30_000


class BarrierLeave(WireModel):
    """Leave and wait (up to `timeout_ms`) until every participant has left."""

    type: Literal["BarrierLeave"] = "BarrierLeave"
    name: str
    participant_id: str
    timeout_ms: U64 = 30_000


class BarrierStatus(WireModel):
    type: Literal["BarrierStatus"] = "BarrierStatus"
    name: str


class BarrierResult(WireModel):
    type: Literal["BarrierResult"] = "BarrierResult"
    is_success: bool
    current_count: U64 = 0
    required_count: U64 = 0
    phase: str = "waiting"
    error: str | None = None


BARRIER_WRITES = frozenset({"BarrierEnter", "BarrierLeave"})
BARRIER_READS = frozenset({"BarrierStatus"})
BarrierRequest = BarrierEnter | BarrierLeave | BarrierStatus

__all__ = [
    "BARRIER_READS",
    "BARRIER_WRITES",
    "ENTER_TIMEOUT",
    "LEAVE_TIMEOUT",
    "BarrierEnter",
    "BarrierLeave",
    "BarrierRequest",
    "BarrierResult",
    "BarrierStatus",
]
