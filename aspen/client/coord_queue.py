"""Queues in the client: flat methods returning the wire result, and a handle:

    jobs = client.queue("jobs")
    await jobs.enqueue(b"resize 42", group="user-7")
    for item in await jobs.dequeue("worker-1", visibility_ms=30_000, wait_ms=5_000):
        ...  # process, then
        await jobs.ack(item.receipt_handle)

Handle methods raise `QueueError` when the result has `is_success=false`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aspen.api import queue as w
from aspen.api.errors import AspenError
from aspen.client.coord_wait import call_waiting

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")


class QueueError(AspenError):
    """A queue operation failed in the domain (its result had `is_success=false`)."""


def _ok(res: R) -> R:
    if not getattr(res, "is_success", False):
        raise QueueError(getattr(res, "error", None) or "queue operation failed")
    return res


class QueueMixin:
    if TYPE_CHECKING:
        timeout: float

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

        async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...

    async def queue_create(
        self,
        name: str,
        *,
        visibility_timeout_ms: int = 30_000,
        default_ttl_ms: int = 0,
        max_delivery_attempts: int = 3,
    ) -> w.QueueCreateResult:
        request = w.QueueCreate(
            queue_name=name,
            default_visibility_timeout_ms=visibility_timeout_ms,
            default_ttl_ms=default_ttl_ms,
            max_delivery_attempts=max_delivery_attempts,
        )
        return await self._call(request, w.QueueCreateResult)

    async def queue_delete(self, name: str) -> w.QueueDeleteResult:
        return await self._call(w.QueueDelete(queue_name=name), w.QueueDeleteResult)

    async def queue_enqueue(
        self,
        name: str,
        payload: bytes,
        *,
        ttl_ms: int | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
    ) -> w.QueueEnqueueResult:
        request = w.QueueEnqueue(
            queue_name=name, payload=payload, ttl_ms=ttl_ms, message_group_id=group, deduplication_id=dedup_id
        )
        return await self._call(request, w.QueueEnqueueResult)

    async def queue_enqueue_batch(
        self, name: str, items: Sequence[w.QueueEnqueueItem]
    ) -> w.QueueEnqueueBatchResult:
        request = w.QueueEnqueueBatch(queue_name=name, items=list(items))
        return await self._call(request, w.QueueEnqueueBatchResult)

    async def queue_dequeue(
        self, name: str, consumer_id: str, *, visibility_timeout_ms: int = 30_000, max_items: int = 1
    ) -> w.QueueDequeueResult:
        request = w.QueueDequeue(
            queue_name=name,
            consumer_id=consumer_id,
            max_items=max_items,
            visibility_timeout_ms=visibility_timeout_ms,
        )
        return await self._call(request, w.QueueDequeueResult)

    async def queue_dequeue_wait(
        self,
        name: str,
        consumer_id: str,
        *,
        wait_timeout_ms: int,
        visibility_timeout_ms: int = 30_000,
        max_items: int = 1,
    ) -> w.QueueDequeueResult:
        """Dequeue, waiting up to `wait_timeout_ms` for an item; empty `items` if none came."""

        def make(left_ms: int) -> w.QueueDequeueWait:
            return w.QueueDequeueWait(
                queue_name=name,
                consumer_id=consumer_id,
                max_items=max_items,
                visibility_timeout_ms=visibility_timeout_ms,
                wait_timeout_ms=left_ms,
            )

        return await call_waiting(
            self, make, w.QueueDequeueResult, wait_timeout_ms, lambda r: r.is_success and not r.items
        )

    async def queue_peek(self, name: str, max_items: int = 10) -> w.QueuePeekResult:
        return await self._call(w.QueuePeek(queue_name=name, max_items=max_items), w.QueuePeekResult)

    async def queue_ack(self, name: str, receipt_handle: str) -> w.QueueOpResult:
        return await self._call(w.QueueAck(queue_name=name, receipt_handle=receipt_handle), w.QueueOpResult)

    async def queue_nack(
        self, name: str, receipt_handle: str, *, to_dlq: bool = False, error: str | None = None
    ) -> w.QueueOpResult:
        request = w.QueueNack(
            queue_name=name, receipt_handle=receipt_handle, move_to_dlq=to_dlq, error_message=error
        )
        return await self._call(request, w.QueueOpResult)

    async def queue_extend(self, name: str, receipt_handle: str, add_ms: int) -> w.QueueOpResult:
        request = w.QueueExtendVisibility(
            queue_name=name, receipt_handle=receipt_handle, additional_timeout_ms=add_ms
        )
        return await self._call(request, w.QueueOpResult)

    async def queue_status(self, name: str) -> w.QueueStatusResult:
        return await self._call(w.QueueStatus(queue_name=name), w.QueueStatusResult)

    async def queue_dlq(self, name: str, max_items: int = 10) -> w.QueueGetDLQResult:
        return await self._call(w.QueueGetDLQ(queue_name=name, max_items=max_items), w.QueueGetDLQResult)

    async def queue_redrive(self, name: str, item_id: int) -> w.QueueOpResult:
        return await self._call(w.QueueRedriveDLQ(queue_name=name, item_id=item_id), w.QueueOpResult)

    def queue(self, name: str) -> Queue:
        return Queue(self, name)


class Queue:
    """One queue; methods return plain values and raise `QueueError` on a domain failure."""

    __slots__ = ("_client", "name")

    def __init__(self, client: QueueMixin, name: str) -> None:
        self._client, self.name = client, name

    async def create(self, **options: Any) -> bool:
        """Create the queue; False if it already existed."""
        return _ok(await self._client.queue_create(self.name, **options)).was_created

    async def delete(self) -> int:
        return _ok(await self._client.queue_delete(self.name)).items_deleted or 0

    async def enqueue(
        self,
        payload: bytes,
        *,
        ttl_ms: int | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
    ) -> int:
        res = _ok(
            await self._client.queue_enqueue(
                self.name, payload, ttl_ms=ttl_ms, group=group, dedup_id=dedup_id
            )
        )
        assert res.item_id is not None
        return res.item_id

    async def dequeue(
        self, consumer_id: str, *, visibility_ms: int = 30_000, max_items: int = 1, wait_ms: int = 0
    ) -> list[w.QueueDequeuedItem]:
        """Claim up to `max_items` items, waiting up to `wait_ms` for the first one."""
        if wait_ms:
            res = await self._client.queue_dequeue_wait(
                self.name,
                consumer_id,
                wait_timeout_ms=wait_ms,
                visibility_timeout_ms=visibility_ms,
                max_items=max_items,
            )
        else:
            res = await self._client.queue_dequeue(
                self.name, consumer_id, visibility_timeout_ms=visibility_ms, max_items=max_items
            )
        return _ok(res).items

    async def ack(self, receipt_handle: str) -> None:
        _ok(await self._client.queue_ack(self.name, receipt_handle))

    async def nack(self, receipt_handle: str, *, to_dlq: bool = False, error: str | None = None) -> None:
        _ok(await self._client.queue_nack(self.name, receipt_handle, to_dlq=to_dlq, error=error))

    async def extend(self, receipt_handle: str, add_ms: int) -> int:
        res = _ok(await self._client.queue_extend(self.name, receipt_handle, add_ms))
        assert res.new_deadline_ms is not None
        return res.new_deadline_ms

    async def status(self) -> w.QueueStatusResult:
        return _ok(await self._client.queue_status(self.name))


__all__ = ["Queue", "QueueError", "QueueMixin"]
