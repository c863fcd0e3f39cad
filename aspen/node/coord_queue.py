"""Dispatch of the queue requests (reference §7.8): every mutation is one proposal; dequeue-wait is
a bounded loop of dequeues (`coord_wait.poll`) that only proposes when the local state shows a
visible item; peek, status and the DLQ listing are reads."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from aspen.api import queue as w
from aspen.layers import queue
from aspen.node.coord_wait import deadline_after, now_ms, poll

if TYPE_CHECKING:
    from aspen.node.coordination import CoordinationHandlers, Handler


def _dequeued(res: queue.QueueResult) -> w.QueueDequeueResult:
    items = [
        w.QueueDequeuedItem(
            item_id=i.item_id,
            payload=i.payload,
            receipt_handle=i.receipt_handle,
            delivery_attempts=i.delivery_attempts,
            enqueued_at_ms=i.enqueued_at_ms,
            visibility_deadline_ms=i.visibility_deadline_ms,
            message_group_id=i.message_group_id,
        )
        for i in res.items
    ]
    return w.QueueDequeueResult(is_success=res.is_success, items=items, error=res.error)


class QueueHandlers:
    def __init__(self, coord: CoordinationHandlers) -> None:
        self._coord = coord

    def handlers(self) -> dict[str, Handler]:
        return {
            "QueueCreate": self._create,
            "QueueDelete": self._delete,
            "QueueEnqueue": self._enqueue,
            "QueueEnqueueBatch": self._enqueue_batch,
            "QueueDequeue": self._dequeue,
            "QueueDequeueWait": self._dequeue_wait,
            "QueuePeek": self._peek,
            "QueueAck": lambda r: self._op(queue.QueueAck(r.queue_name, r.receipt_handle), r),
            "QueueNack": lambda r: self._op(
                queue.QueueNack(r.queue_name, r.receipt_handle, r.move_to_dlq, r.error_message), r
            ),
            "QueueExtendVisibility": lambda r: self._op(
                queue.QueueExtend(r.queue_name, r.receipt_handle, r.additional_timeout_ms), r
            ),
            "QueueStatus": self._status,
            "QueueGetDLQ": self._dlq,
            "QueueRedriveDLQ": lambda r: self._op(queue.QueueRedrive(r.queue_name, r.item_id), r),
        }

    async def _propose(self, op: queue.QueueOp, size: int) -> queue.QueueResult:
        res: queue.QueueResult = await self._coord._propose(queue.LAYER, op, size)
        return res

    async def _create(self, req: w.QueueCreate) -> w.QueueCreateResult:
        op = queue.QueueCreate(
            req.queue_name, req.default_visibility_timeout_ms, req.default_ttl_ms, req.max_delivery_attempts
        )
        res = await self._propose(op, len(req.queue_name))
        return w.QueueCreateResult(
            is_success=res.is_success, was_created=bool(res.was_created), error=res.error
        )

    async def _delete(self, req: w.QueueDelete) -> w.QueueDeleteResult:
        res = await self._propose(queue.QueueDelete(req.queue_name), len(req.queue_name))
        return w.QueueDeleteResult(
            is_success=res.is_success, items_deleted=res.items_deleted, error=res.error
        )

    async def _enqueue(self, req: w.QueueEnqueue) -> w.QueueEnqueueResult:
        item = (req.payload, req.ttl_ms or 0, req.message_group_id, req.deduplication_id)
        res = await self._propose(queue.QueueEnqueue(req.queue_name, (item,)), len(req.payload))
        item_id = res.item_ids[0] if res.item_ids else None
        return w.QueueEnqueueResult(is_success=res.is_success, item_id=item_id, error=res.error)

    async def _enqueue_batch(self, req: w.QueueEnqueueBatch) -> w.QueueEnqueueBatchResult:
        items = tuple((i.payload, i.ttl_ms or 0, i.message_group_id, i.deduplication_id) for i in req.items)
        size = sum(len(i.payload) for i in req.items)
        res = await self._propose(queue.QueueEnqueue(req.queue_name, items), size)
        return w.QueueEnqueueBatchResult(
            is_success=res.is_success, item_ids=list(res.item_ids), error=res.error
        )

    def _dequeue_op(self, req: w.QueueDequeue | w.QueueDequeueWait) -> queue.QueueDequeue:
        # The receipt handle's nonce: chosen here, on the proposer, never inside apply.
        nonce = secrets.randbits(63)
        return queue.QueueDequeue(
            req.queue_name, req.consumer_id, req.max_items, req.visibility_timeout_ms, nonce
        )

    async def _dequeue(self, req: w.QueueDequeue) -> w.QueueDequeueResult:
        return _dequeued(await self._propose(self._dequeue_op(req), len(req.queue_name)))

    async def _dequeue_wait(self, req: w.QueueDequeueWait) -> w.QueueDequeueResult:
        op = self._dequeue_op(req)
        error = op.check()
        if error is not None:
            return w.QueueDequeueResult(is_success=False, error=error)

        async def step() -> queue.QueueResult | None:
            # This node is the leader (writes are forwarded to it): its state has every committed
            # item, so an empty local queue means a dequeue would find nothing; skip the proposal.
            if not queue.has_visible(self._coord._view(), req.queue_name, now_ms()):
                return None
            res = await self._propose(op, len(req.queue_name))
            return res if res.items or not res.is_success else None

        done = await poll(deadline_after(req.wait_timeout_ms), step)
        return _dequeued(done) if done is not None else w.QueueDequeueResult(is_success=True)

    async def _op(
        self, op: queue.QueueOp, req: w.QueueAck | w.QueueNack | w.QueueExtendVisibility | w.QueueRedriveDLQ
    ) -> w.QueueOpResult:
        res = await self._propose(op, len(req.queue_name) + 64)
        return w.QueueOpResult(
            is_success=res.is_success, new_deadline_ms=res.new_deadline_ms, error=res.error
        )

    async def _peek(self, req: w.QueuePeek) -> w.QueuePeekResult:
        await self._coord._barrier(False)
        res = queue.peek(self._coord._view(), req.queue_name, req.max_items, now_ms())
        items = [
            w.QueuePeekedItem(
                item_id=i.item_id,
                payload=i.payload,
                delivery_attempts=i.delivery_attempts,
                enqueued_at_ms=i.enqueued_at_ms,
                expires_at_ms=i.expires_at_ms,
                message_group_id=i.message_group_id,
            )
            for i in res.items
        ]
        return w.QueuePeekResult(is_success=res.is_success, items=items, error=res.error)

    async def _status(self, req: w.QueueStatus) -> w.QueueStatusResult:
        await self._coord._barrier(False)
        res = queue.status(self._coord._view(), req.queue_name, now_ms())
        s = res.stats or queue.QueueStats(does_exist=False)
        return w.QueueStatusResult(
            is_success=res.is_success,
            does_exist=s.does_exist,
            visible_count=s.visible_count,
            pending_count=s.pending_count,
            dlq_count=s.dlq_count,
            total_enqueued=s.total_enqueued,
            total_acked=s.total_acked,
            total_dlq=s.total_dlq,
            error=res.error,
        )

    async def _dlq(self, req: w.QueueGetDLQ) -> w.QueueGetDLQResult:
        await self._coord._barrier(False)
        res = queue.dead_letters(self._coord._view(), req.queue_name, req.max_items)
        items = [
            w.QueueDLQItem(
                item_id=i.item_id,
                payload=i.payload,
                delivery_attempts=i.delivery_attempts,
                enqueued_at_ms=i.enqueued_at_ms,
                reason=i.reason or "",
                moved_at_ms=i.moved_at_ms,
                last_error=i.last_error,
            )
            for i in res.items
        ]
        return w.QueueGetDLQResult(is_success=res.is_success, items=items, error=res.error)


__all__ = ["QueueHandlers"]
