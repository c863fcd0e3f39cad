"""The client cuts a long blocking wait into chunks the node (and a forwarding follower) can serve,
stops at the first answer that is not "timed out", and gives each chunk an RPC deadline longer than
the wait. Pure: the transport is replaced by a function that answers like a node would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aspen.api import locks as w
from aspen.api.errors import OutcomeUnknownError
from aspen.client import coord_wait
from aspen.client.locks import Lock, LockMixin

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
        return w.LockResult(
            is_success=False, holder_id="other", deadline_ms=9, error=TIMED_OUT, status="timed_out"
        )


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


class FlakyLockNode:
    """Holds one lock record; `apply` says whether the next request takes effect, and every request
    whose outcome is in doubt (`doubtful`) raises `OutcomeUnknownError` whether applied or not."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None
        self.apply = True
        self.doubtful = False

    def _answer(self, res: w.LockResult) -> w.LockResult:
        if self.doubtful:
            raise OutcomeUnknownError("leader lost mid-request")
        return res

    async def lock_acquire(self, key: str, holder_id: str, ttl_ms: int, timeout_ms: int) -> w.LockResult:
        token = (self.record or {}).get("fencing_token", 0) + 1
        if self.apply:
            self.record = {"holder_id": holder_id, "fencing_token": token, "deadline_ms": 10_000}
        return self._answer(
            w.LockResult(is_success=True, fencing_token=token, holder_id=holder_id, deadline_ms=1)
        )

    async def lock_release(self, key: str, holder_id: str, fencing_token: int) -> w.LockResult:
        if self.apply and self.record is not None:
            self.record = {"holder_id": "", "fencing_token": fencing_token, "deadline_ms": 0}
        return self._answer(w.LockResult(is_success=True, fencing_token=fencing_token))

    async def get(self, key: str, *, stale: bool = False) -> bytes | None:
        return None if self.record is None else json.dumps(self.record).encode()

    async def call(self, request: Any) -> w.LockResult:
        """The client's generic call, which the handle uses for its declared lock requests."""
        if isinstance(request, w.LockAcquire):
            return await self.lock_acquire(request.key, request.holder_id, request.ttl_ms, request.timeout_ms)
        assert isinstance(request, w.LockRelease)
        return await self.lock_release(request.key, request.holder_id, request.fencing_token)


def test_an_acquire_in_doubt_is_recovered_when_it_was_applied() -> None:
    node = FlakyLockNode()
    lock = Lock(node, "k")  # type: ignore[arg-type]
    node.doubtful = True
    assert asyncio.run(lock.acquire()) == 1 and lock.token == 1


def test_an_earlier_hold_whose_release_failed_is_not_taken_for_a_new_acquisition() -> None:
    """The handle's release got lost, then its next acquire was in doubt and not applied: the record
    still names this holder with the old token. Handing that token out again would give two
    acquisitions one fencing token, so the acquire reports the doubt instead."""
    node = FlakyLockNode()
    lock = Lock(node, "k")  # type: ignore[arg-type]
    assert asyncio.run(lock.acquire()) == 1
    node.apply, node.doubtful = False, True
    with pytest.raises(OutcomeUnknownError):
        asyncio.run(lock.release())
    with pytest.raises(OutcomeUnknownError):
        asyncio.run(lock.acquire())
    assert lock.token is None
