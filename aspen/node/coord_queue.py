"""Dequeue-wait (reference §7.8), the one queue request that waits in the node: a bounded loop of
dequeues (`coord_wait.poll`) that only proposes when the local state shows a visible item. The
other queue requests are declared operations, dispatched generically (aspen.node.dispatch)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from aspen.api import queue as w
from aspen.api.operation import OPERATIONS
from aspen.layers import queue
from aspen.node.coord_wait import deadline_after, now_ms, poll
from aspen.node.dispatch import wire_result

if TYPE_CHECKING:
    from aspen.node.coordination import CoordinationHandlers, Handler


class QueueHandlers:
    def __init__(self, coord: CoordinationHandlers) -> None:
        self._coord = coord

    def handlers(self) -> dict[str, Handler]:
        return {"QueueDequeueWait": self._dequeue_wait}

    async def _dequeue_wait(self, req: w.QueueDequeueWait) -> w.QueueDequeueResult:
        # The receipt handle's nonce: chosen here, on the proposer, never inside apply.
        op = queue.QueueDequeue(
            req.queue_name, req.consumer_id, req.max_items, req.visibility_timeout_ms, secrets.randbits(63)
        )
        error = op.check()
        if error is not None:
            return w.QueueDequeueResult(is_success=False, error=error)

        async def step() -> queue.QueueResult | None:
            # This node is the leader (writes are forwarded to it): its state has every committed
            # item, so an empty local queue means a dequeue would find nothing; skip the proposal.
            if not queue.has_visible(self._coord._view(), req.queue_name, now_ms()):
                return None
            res: queue.QueueResult = await self._coord._propose(queue.LAYER, op, len(req.queue_name))
            return res if res.items or not res.is_success else None

        done = await poll(deadline_after(req.wait_timeout_ms), step)
        if done is None:
            return w.QueueDequeueResult(is_success=True)
        result = wire_result(OPERATIONS["QueueDequeueWait"], done)
        assert isinstance(result, w.QueueDequeueResult)
        return result


__all__ = ["QueueHandlers"]
