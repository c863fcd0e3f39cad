"""The client's re-issuing of a blocking request whose node-side slice ran out (`call_waiting`):
a node waits at most `MAX_WAIT_PER_REQUEST_MS` per request (aspen.node.dispatch)."""

from __future__ import annotations

import asyncio
from typing import Any

from aspen.api import barrier as w
from aspen.api.wire import MAX_WAIT_PER_REQUEST_MS
from aspen.client.coord_wait import TRANSIT_ALLOWANCE_S, call_waiting

ENTER_TIMEOUT = "barrier enter timeout"


class Requester:
    """Answers every BarrierEnter with a node-side timeout, recording what it was sent."""

    def __init__(self, times_out: int) -> None:
        self.timeout = 30.0
        self.sent: list[tuple[int, float | None]] = []
        self.times_out = times_out

    async def request(self, request: Any, *, timeout: float | None = None) -> Any:
        self.sent.append((request.timeout_ms, timeout))
        late = len(self.sent) <= self.times_out
        if late:
            return w.BarrierResult(is_success=False, error=ENTER_TIMEOUT, status="timed_out")
        return w.BarrierResult(is_success=True, status="ok")


def _enter(client: Requester, timeout_ms: int) -> w.BarrierResult:
    def make(left_ms: int) -> w.BarrierEnter:
        return w.BarrierEnter(name="b", participant_id="p", required_count=2, timeout_ms=left_ms)

    return asyncio.run(
        call_waiting(client, make, w.BarrierResult, timeout_ms, lambda r: r.status == "timed_out")
    )


def test_the_client_reissues_a_long_wait_with_the_time_left() -> None:
    client = Requester(times_out=2)
    assert _enter(client, 60_000).is_success
    assert len(client.sent) == 3
    lefts = [left for left, _ in client.sent]
    assert lefts == sorted(lefts, reverse=True) and 0 < lefts[0] <= 60_000
    # Each request's RPC budget covers the node's longest wait for it plus transit.
    for left, budget in client.sent:
        assert (
            budget is not None and budget >= min(left, MAX_WAIT_PER_REQUEST_MS) / 1000 + TRANSIT_ALLOWANCE_S
        )


def test_the_reissuing_is_bounded_even_if_the_node_answers_early() -> None:
    client = Requester(times_out=10**6)
    res = _enter(client, 20_000)
    assert res.error == ENTER_TIMEOUT
    assert len(client.sent) == 20_000 // MAX_WAIT_PER_REQUEST_MS + 2
