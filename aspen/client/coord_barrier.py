"""The barrier handle (the flat methods `barrier_enter`, `barrier_leave`, `barrier_status` are
derived from the declarations in aspen.api.barrier):

async with client.barrier("phase-1", "worker-3", count=3):
    ...  # runs once all 3 workers entered; leaving waits until all 3 left
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aspen.api import barrier as w
from aspen.api.errors import AspenError

DEFAULT_TIMEOUT_MS = 30_000


class BarrierError(AspenError):
    """The barrier was not passed in time, or the request was rejected."""


class BarrierHandles:
    if TYPE_CHECKING:

        async def call(self, request: Any) -> Any: ...

    def barrier(
        self, name: str, participant_id: str, *, count: int, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> Barrier:
        return Barrier(self, name, participant_id, count, timeout_ms)


@dataclass(slots=True)
class Barrier:
    """`async with` enters (waiting for everyone) and, on exit, leaves (waiting for everyone);
    either raises `BarrierError` if it does not happen within `timeout_ms`."""

    _client: BarrierHandles = field(repr=False)
    name: str
    participant_id: str
    count: int
    timeout_ms: int

    async def enter(self) -> w.BarrierResult:
        request = w.BarrierEnter(
            name=self.name,
            participant_id=self.participant_id,
            required_count=self.count,
            timeout_ms=self.timeout_ms,
        )
        return self._passed(await self._client.call(request), "enter")

    async def leave(self) -> w.BarrierResult:
        request = w.BarrierLeave(
            name=self.name, participant_id=self.participant_id, timeout_ms=self.timeout_ms
        )
        return self._passed(await self._client.call(request), "leave")

    @staticmethod
    def _passed(res: w.BarrierResult, what: str) -> w.BarrierResult:
        if not res.is_success:
            raise BarrierError(res.error or f"barrier {what} failed")
        return res

    async def __aenter__(self) -> w.BarrierResult:
        return await self.enter()

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()


__all__ = ["Barrier", "BarrierError", "BarrierHandles"]
