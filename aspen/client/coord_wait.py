"""Client side of the blocking coordination requests: a node waits at most
`MAX_WAIT_PER_REQUEST_MS` per request, so a longer wait is re-issued here with the time left, and
each request gets an RPC budget that covers the node's wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from aspen.api.errors import ServiceUnavailableError
from aspen.api.wire import MAX_WAIT_PER_REQUEST_MS

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")

#: Added to the node's longest wait: time for the request to travel, be forwarded and be answered.
TRANSIT_ALLOWANCE_S = 10.0


class _Requester(Protocol):
    timeout: float

    async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...


async def call_waiting(
    client: _Requester,
    make: Callable[[int], m.Request],
    kind: type[R],
    timeout_ms: int,
    again: Callable[[R], bool],
) -> R:
    """Send `make(wait_ms)` until `again(result)` is false or `timeout_ms` is used up. Each request
    asks the node to wait at most one slice (`MAX_WAIT_PER_REQUEST_MS`); the first one carries
    `timeout_ms` as given (0 = try once, or a value the node rejects), later ones at least 1 ms."""
    deadline = time.monotonic() + timeout_ms / 1000
    rounds = timeout_ms // MAX_WAIT_PER_REQUEST_MS + 2  # the node waits a full slice per round
    result: R | None = None
    for i in range(rounds):
        left_ms = timeout_ms if i == 0 else max(1, int((deadline - time.monotonic()) * 1000))
        wait_ms = min(left_ms, MAX_WAIT_PER_REQUEST_MS)
        budget = max(client.timeout, wait_ms / 1000 + TRANSIT_ALLOWANCE_S)
        request = make(wait_ms)
        response = await client.request(request, timeout=budget)
        if not isinstance(response, kind):
            raise ServiceUnavailableError(f"unexpected response {response.type} to {request.type}")
        result = response
        if not again(result) or time.monotonic() >= deadline:
            break
    assert result is not None  # rounds >= 2
    return result


__all__ = ["call_waiting"]
