"""Dispatch of the barrier requests (reference §7.7): enter and leave are one proposal each, then
a bounded wait (`coord_wait.poll`) on this node's state for the round to become ready (enter) or
complete (leave). Writes reach this code on the leader, whose state holds every committed change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aspen.api import barrier as w
from aspen.layers import barrier
from aspen.node.coord_wait import deadline_after, poll

if TYPE_CHECKING:
    from aspen.node.coordination import CoordinationHandlers, Handler


def _wire(res: barrier.BarrierResult, error: str | None = None) -> w.BarrierResult:
    return w.BarrierResult(
        is_success=res.is_success and error is None,
        current_count=res.current_count,
        required_count=res.required_count,
        phase=res.phase,
        error=error or res.error,
    )


class BarrierHandlers:
    def __init__(self, coord: CoordinationHandlers) -> None:
        self._coord = coord

    def handlers(self) -> dict[str, Handler]:
        return {"BarrierEnter": self._enter, "BarrierLeave": self._leave, "BarrierStatus": self._status}

    async def _propose(self, op: barrier.BarrierOp) -> barrier.BarrierResult:
        res: barrier.BarrierResult = await self._coord._propose(
            barrier.LAYER, op, len(op.name) + len(op.participant)
        )
        return res

    def _local(self, name: str) -> barrier.BarrierResult:
        return barrier.status(self._coord._view(), name)

    async def _enter(self, req: w.BarrierEnter) -> w.BarrierResult:
        op = barrier.BarrierEnter(req.name, req.participant_id, req.required_count)
        entered: list[barrier.BarrierResult] = []  # the enter that made us a member of a round

        async def step() -> barrier.BarrierResult | None:
            if not entered:
                res = await self._propose(op)
                if not res.is_success or res.phase == barrier.READY:
                    return res
                if res.is_member:
                    entered.append(res)
                return None  # waiting for the others, or for a leaving round to complete
            now = self._local(req.name)
            if not now.is_success:
                return now
            # Released once the round became ready (or moved on past it).
            return now if now.round != entered[0].round or now.phase != barrier.WAITING else None

        done = await poll(deadline_after(req.timeout_ms), step)
        if done is not None:
            return _wire(done)
        return _wire(self._local(req.name), w.ENTER_TIMEOUT)

    async def _leave(self, req: w.BarrierLeave) -> w.BarrierResult:
        res = await self._propose(barrier.BarrierLeave(req.name, req.participant_id))
        if not res.is_success or res.phase == barrier.COMPLETED:
            return _wire(res)
        left_round = res.round

        async def step() -> barrier.BarrierResult | None:
            now = self._local(req.name)
            if not now.is_success:
                return now
            if now.round != left_round or now.phase == barrier.COMPLETED:
                return barrier.BarrierResult(True, 0, now.required_count, barrier.COMPLETED, left_round)
            return None

        done = await poll(deadline_after(req.timeout_ms), step)
        if done is not None:
            return _wire(done)
        return _wire(self._local(req.name), w.LEAVE_TIMEOUT)

    async def _status(self, req: w.BarrierStatus) -> w.BarrierResult:
        await self._coord._barrier(False)
        return _wire(self._local(req.name))


__all__ = ["BarrierHandlers"]
