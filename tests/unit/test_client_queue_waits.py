"""A declared blocking request whose wait is not `timeout_ms` (the queue's `wait_timeout_ms`): the
client's generic `call`, and so `queue_dequeue_wait` and the handle, re-issue it in chunks the
node can serve until an item comes. Pure: the transport is a function answering like a node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aspen.api import queue as w
from aspen.client import coord_wait
from aspen.client.coord_queue import QueueMixin
from aspen.client.operations import OperationCalls

ITEM = w.QueueDequeuedItem(
    item_id=1,
    payload=b"x",
    receipt_handle="1:2:3",
    delivery_attempts=1,
    enqueued_at_ms=1,
    visibility_deadline_ms=9,
)


class ScriptedNode(OperationCalls, QueueMixin):
    """Answers "no item yet" until the `item_at`-th request."""

    timeout = 1.0

    def __init__(self, item_at: int) -> None:
        self.sent: list[int] = []
        self.item_at = item_at

    async def request(self, request: Any, *, timeout: float | None = None) -> Any:
        assert isinstance(request, w.QueueDequeueWait) and timeout is not None
        self.sent.append(request.wait_timeout_ms)
        if len(self.sent) >= self.item_at:
            return w.QueueDequeueResult(is_success=True, items=[ITEM], status="ok")
        return w.QueueDequeueResult(is_success=True, items=[], status="timed_out")


def test_a_dequeue_wait_is_re_issued_until_an_item_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coord_wait, "MAX_WAIT_PER_REQUEST_MS", 40)
    node = ScriptedNode(item_at=3)
    items = asyncio.run(node.queue("jobs").dequeue("c", wait_ms=10_000))
    assert items == [ITEM]
    assert len(node.sent) == 3 and all(1 <= wait <= 40 for wait in node.sent)


def test_the_flat_method_takes_the_wait_by_its_field_name() -> None:
    node = ScriptedNode(item_at=1)
    res = asyncio.run(node.queue_dequeue_wait("jobs", "c", wait_timeout_ms=0))  # type: ignore[attr-defined]
    assert res.items == [ITEM] and node.sent == [0]
