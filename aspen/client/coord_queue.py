"""Queues in the client. The flat methods (`client.queue_enqueue("jobs", b"x")`, returning the wire
result) are derived from the declarations in aspen.api.queue; written here is a handle:

    jobs = client.queue("jobs")
    await jobs.enqueue(b"resize 42", group="user-7")
    for item in await jobs.dequeue("worker-1", visibility_ms=30_000, wait_ms=5_000):
        ...  # process, then
        await jobs.ack(item.receipt_handle)

Handle methods raise `QueueError` when the result has `is_success=false`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from aspen.api import queue as w
from aspen.api.errors import AspenError

R = TypeVar("R")


class QueueError(AspenError):
    """A queue operation failed in the domain (its result had `is_success=false`)."""


def _ok(res: R) -> R:
    if not getattr(res, "is_success", False):
        raise QueueError(getattr(res, "error", None) or "queue operation failed")
    return res


class QueueMixin:
    if TYPE_CHECKING:

        async def call(self, request: Any) -> Any: ...

    def queue(self, name: str) -> Queue:
        return Queue(self, name)


class Queue:
    """One queue; methods return plain values and raise `QueueError` on a domain failure."""

    __slots__ = ("_client", "name")

    def __init__(self, client: QueueMixin, name: str) -> None:
        self._client, self.name = client, name

    async def _call(self, request: Any) -> Any:
        return _ok(await self._client.call(request))

    async def create(
        self, *, visibility_timeout_ms: int = 30_000, default_ttl_ms: int = 0, max_delivery_attempts: int = 3
    ) -> bool:
        """Create the queue; False if it already existed."""
        request = w.QueueCreate(
            queue_name=self.name,
            default_visibility_timeout_ms=visibility_timeout_ms,
            default_ttl_ms=default_ttl_ms,
            max_delivery_attempts=max_delivery_attempts,
        )
        created: bool = (await self._call(request)).was_created
        return created

    async def delete(self) -> int:
        deleted: int = (await self._call(w.QueueDelete(queue_name=self.name))).items_deleted or 0
        return deleted

    async def enqueue(
        self,
        payload: bytes,
        *,
        ttl_ms: int | None = None,
        group: str | None = None,
        dedup_id: str | None = None,
    ) -> int:
        request = w.QueueEnqueue(
            queue_name=self.name,
            payload=payload,
            ttl_ms=ttl_ms,
            message_group_id=group,
            deduplication_id=dedup_id,
        )
        item_id: int | None = (await self._call(request)).item_id
        assert item_id is not None
        return item_id

    async def dequeue(
        self, consumer_id: str, *, visibility_ms: int = 30_000, max_items: int = 1, wait_ms: int = 0
    ) -> list[w.QueueDequeuedItem]:
        """Claim up to `max_items` items, waiting up to `wait_ms` for the first one."""
        fields: dict[str, Any] = {
            "queue_name": self.name,
            "consumer_id": consumer_id,
            "max_items": max_items,
            "visibility_timeout_ms": visibility_ms,
        }
        # With a wait, the client re-issues the request while the node's waits run out (`call`).
        request = (
            w.QueueDequeueWait(**fields, wait_timeout_ms=wait_ms) if wait_ms else w.QueueDequeue(**fields)
        )
        items: list[w.QueueDequeuedItem] = (await self._call(request)).items
        return items

    async def ack(self, receipt_handle: str) -> None:
        await self._call(w.QueueAck(queue_name=self.name, receipt_handle=receipt_handle))

    async def nack(self, receipt_handle: str, *, to_dlq: bool = False, error: str | None = None) -> None:
        request = w.QueueNack(
            queue_name=self.name, receipt_handle=receipt_handle, move_to_dlq=to_dlq, error_message=error
        )
        await self._call(request)

    async def extend(self, receipt_handle: str, add_ms: int) -> int:
        request = w.QueueExtendVisibility(
            queue_name=self.name, receipt_handle=receipt_handle, additional_timeout_ms=add_ms
        )
        deadline: int | None = (await self._call(request)).new_deadline_ms
        assert deadline is not None
        return deadline

    async def status(self) -> w.QueueStatusResult:
        status: w.QueueStatusResult = await self._call(w.QueueStatus(queue_name=self.name))
        return status


__all__ = ["Queue", "QueueError", "QueueMixin"]
