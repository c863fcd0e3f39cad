"""A layer record overwritten through plain KV writes (anything a client can store under
`__coord:`) makes the operations on it fail with a "corrupted data" error on every replica; apply
never raises and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from aspen.kv import KvStateMachine, Write
from aspen.layers import APPLIERS, barrier, queue, semaphore, service

GARBAGE = [b"not json", b"[]", b"{}", b'{"capacity_permits": "x", "holders": [1]}', b'{"id": "1"}']

CASES: list[tuple[str, Any, Any]] = [
    (semaphore.storage_key("s"), semaphore.LAYER, semaphore.SemaphoreTryAcquire("s", "h", 1, 2, 100)),
    (semaphore.storage_key("s"), semaphore.LAYER, semaphore.SemaphoreRelease("s", "h", 0)),
    (barrier.storage_key("b"), barrier.LAYER, barrier.BarrierEnter("b", "p", 2)),
    (barrier.storage_key("b"), barrier.LAYER, barrier.BarrierLeave("b", "p")),
    (queue.queue_key("q"), queue.LAYER, queue.QueueEnqueue("q", ((b"x", 0, None, None),))),
    (queue.queue_key("q") + ":item:" + "1".zfill(20), queue.LAYER, queue.QueueDequeue("q", "c", 1, 10, 1)),
    (queue.queue_key("q") + ":pending:" + "1".zfill(20), queue.LAYER, queue.QueueAck("q", "1:2:3")),
    (queue.queue_key("q") + ":dlq:" + "1".zfill(20), queue.LAYER, queue.QueueRedrive("q", 1)),
    (service.instance_key("a", "i"), service.LAYER, service.ServiceHeartbeat("a", "i", 1)),
    (service.TOKEN_KEY, service.LAYER, service.ServiceRegister("a", "i", "h:1", "1", (), 1, 100, ())),
]


@pytest.mark.parametrize(("key", "layer", "op"), CASES)
@pytest.mark.parametrize("garbage", GARBAGE)
def test_corrupt_records_are_reported_not_crashed_on(key: str, layer: Any, op: Any, garbage: bytes) -> None:
    kv = KvStateMachine(layers=APPLIERS)
    if isinstance(op, queue.QueueDequeue | queue.QueueAck | queue.QueueRedrive):
        kv.apply(1, queue.LAYER.command(queue.QueueCreate("q", 10, 0, 3), now_ms=1))
    kv.apply(2, Write(key, garbage))
    before = dict(kv.items(""))
    res = kv.apply(3, layer.command(op, now_ms=5))
    assert res.is_success is False and "corrupted data" in str(res.error), res
    assert dict(kv.items("")) == before
