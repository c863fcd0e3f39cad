"""Barriers: wait until N participants arrive, then until all have left. The operations are
declared here once (aspen.api.operation); all three answer with a `BarrierResult`."""

from __future__ import annotations

from typing import Annotated, Literal

from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U64, Result, WireModel


class BarrierResult(Result):
    type: Literal["BarrierResult"] = "BarrierResult"
    is_success: bool
    current_count: U64 = 0
    required_count: U64 = 0
    phase: str = "waiting"
    error: str | None = None


barrier = Family(
    "barrier",
    "Barriers: wait until N participants arrive, then until all have left.",
    "barrier",
    BarrierResult,
)
_NAME = Annotated[str, Arg()]
_PARTICIPANT = Annotated[str, Opt("--participant", "Participant id.")]
_WAIT = Annotated[U64, Opt("--timeout", "How long to wait for the other participants, in ms.")]


@barrier.blocking("enter")
class BarrierEnter(WireModel):
    """Enter barrier NAME and wait until --count participants are in."""

    type: Literal["BarrierEnter"] = "BarrierEnter"
    name: _NAME
    participant_id: _PARTICIPANT
    required_count: Annotated[U64, Opt("--count", "Participants the barrier waits for.", low=1)]
    timeout_ms: _WAIT = 30_000


@barrier.blocking("leave")
class BarrierLeave(WireModel):
    """Leave barrier NAME and wait until every participant has left."""

    type: Literal["BarrierLeave"] = "BarrierLeave"
    name: _NAME
    participant_id: _PARTICIPANT
    timeout_ms: _WAIT = 30_000


@barrier.read("status")
class BarrierStatus(WireModel):
    """Show the participants count, required count and phase of barrier NAME."""

    type: Literal["BarrierStatus"] = "BarrierStatus"
    name: _NAME
