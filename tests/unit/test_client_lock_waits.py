"""The client cuts a long blocking wait into chunks the node (and a forwarding follower) can serve,
stops at the first answer that is not "timed out", and gives each chunk an RPC deadline longer than
the wait. Pure: the transport is replaced by a function that answers like a node would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aspen.api import locks as w
from aspen.client import coord_wait
from aspen.client.locks import LockMixin

TIMED_OUT = "operation timed out: lock acquisition for '__coord:lock:k'"


class ScriptedNode(LockMixin):
    """Answers `LockAcquire` after waiting its `timeout_ms`, with a timeout until `grant_at`."""

    timeout = 1.0

    def __init__(self, grant_at: int | None = None) -> None:
        self.sent: list[tuple[int, float]] = []
        self.grant_at = grant_at

    async def request(self, request: Any, *, timeout: float | None = None) -> Any:
        assert isinstance(request, w.LockAcquire) and timeout is not None
        self.sent.append((request.timeout_ms, timeout))
        if self.grant_at is not None and len(self.sent) >= self.grant_at:
            return w.LockResult(is_success=True, fencing_token=7, holder_id="h", deadline_ms=1)
        await asyncio.sleep(request.timeout_ms / 1000)
        return w.LockResult(is_success=False, holder_id="other", deadline_ms=9, error=TIMED_OUT)


def test_a_long_wait_is_sent_in_chunks_until_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coord_wait, "MAX_WAIT_PER_REQUEST_MS", 40)
    node = ScriptedNode()
    res = asyncio.run(node.lock_acquire("k", "h", 1_000, timeout_ms=100))
    assert res.error == TIMED_OUT
    chunks = [c for c, _ in node.sent]
    assert 2 <= len(chunks) <= 100 // 40 + 2 and all(1 <= c <= 40 for c in chunks)
    # The RPC deadline covers the node's wait plus a margin, whatever the client's default.
    assert all(rpc >= c / 1000 + 1 for c, rpc in node.sent)


def test_the_first_answer_that_is_not_a_timeout_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coord_wait, "MAX_WAIT_PER_REQUEST_MS", 20)
    node = ScriptedNode(grant_at=2)
    res = asyncio.run(node.lock_acquire("k", "h", 1_000, timeout_ms=10_000))
    assert res.is_success and res.fencing_token == 7 and len(node.sent) == 2


def test_an_invalid_wait_goes_to_the_node_once_for_its_precise_error() -> None:
    node = ScriptedNode(grant_at=1)
    asyncio.run(node.lock_acquire("k", "h", 1_000, timeout_ms=0))
    assert [chunk for chunk, _ in node.sent] == [0]
