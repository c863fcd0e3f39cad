"""Barriers in the client: flat methods returning the wire result, and a handle:

async with client.barrier("phase-1", "worker-3", count=3):
    ...  # runs once all 3 workers entered; leaving waits until all 3 left
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from aspen.api import barrier as w
from aspen.api.errors import AspenError
from aspen.client.coord_wait import call_waiting

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")

DEFAULT_TIMEOUT_MS = 30_000


class BarrierError(AspenError):
    """The barrier was not passed in time, or the request was rejected."""


class BarrierMixin:
    if TYPE_CHECKING:
        timeout: float

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

        async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...

    async def barrier_enter(
        self, name: str, participant_id: str, count: int, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> w.BarrierResult:
        """Enter and wait until `count` participants are in (error `barrier enter timeout`)."""

        def make(left_ms: int) -> w.BarrierEnter:
            return w.BarrierEnter(
                name=name, participant_id=participant_id, required_count=count, timeout_ms=left_ms
            )

        return await call_waiting(
            self, make, w.BarrierResult, timeout_ms, lambda r: r.error == w.ENTER_TIMEOUT
        )

    async def barrier_leave(
        self, name: str, participant_id: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> w.BarrierResult:
        """Leave and wait until every participant left (error `barrier leave timeout`)."""

        def make(left_ms: int) -> w.BarrierLeave:
            return w.BarrierLeave(name=name, participant_id=participant_id, timeout_ms=left_ms)

        return await call_waiting(
            self, make, w.BarrierResult, timeout_ms, lambda r: r.error == w.LEAVE_TIMEOUT
        )

    async def barrier_status(self, name: str) -> w.BarrierResult:
        return await self._call(w.BarrierStatus(name=name), w.BarrierResult)

    def barrier(
        self, name: str, participant_id: str, *, count: int, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> Barrier:
        return Barrier(self, name, participant_id, count, timeout_ms)


class Barrier:
    """`async with` enters (waiting for everyone) and, on exit, leaves (waiting for everyone);
    either raises `BarrierError` if it does not happen within `timeout_ms`."""

    __slots__ = ("_client", "count", "name", "participant_id", "timeout_ms")

    def __init__(
        self, client: BarrierMixin, name: str, participant_id: str, count: int, timeout_ms: int
    ) -> None:
        self._client, self.name, self.participant_id = client, name, participant_id
        self.count, self.timeout_ms = count, timeout_ms

    async def enter(self) -> w.BarrierResult:
        res = await self._client.barrier_enter(
            self.name, self.participant_id, self.count, timeout_ms=self.timeout_ms
        )
        if not res.is_success:
            raise BarrierError(res.error or "barrier enter failed")
        return res

    async def leave(self) -> w.BarrierResult:
        res = await self._client.barrier_leave(self.name, self.participant_id, timeout_ms=self.timeout_ms)
        if not res.is_success:
            raise BarrierError(res.error or "barrier leave failed")
        return res

    async def __aenter__(self) -> w.BarrierResult:
        return await self.enter()

    async def __aexit__(self, *exc: object) -> None:
        await self.leave()


__all__ = ["Barrier", "BarrierError", "BarrierMixin"]
