"""Dispatch of the coordination requests: wire request → layer op stamped with this node's clock →
one Raft proposal → layer result → wire response. Reads go through the read barrier and a layer
query over the local state.

Writes reach this code only on the leader (`service.RELAYED` includes `WRITE_REQUESTS`), so
`now_ms` is the leader's clock; it is read here, once, and travels inside the command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aspen.api import coordination as c
from aspen.api.errors import InternalError
from aspen.kv import KvView, LayerCommand, LayerRejected
from aspen.layers import counter, sequence
from aspen.layers.framework import Layer, Op
from aspen.node.coord_barrier import BarrierHandlers
from aspen.node.coord_queue import QueueHandlers
from aspen.node.coord_semaphore import SemaphoreHandlers
from aspen.node.coord_service import ServiceHandlers
from aspen.node.coord_wait import now_ms
from aspen.node.locks import LockHandlers
from aspen.node.state import NodeStateMachine

Propose = Callable[[Any, int], Awaitable[Any]]
Barrier = Callable[[bool], Awaitable[None]]
Handler = Callable[[Any], Awaitable[Any]]

#: Log entry size estimate for group-commit accounting: the key plus a fixed allowance.
_OVERHEAD = 64


class CoordinationHandlers(LockHandlers):
    def __init__(self, *, propose: Propose, barrier: Barrier, state: NodeStateMachine) -> None:
        self._propose_raw = propose
        self._barrier = barrier
        self._state = state

    def handlers(self) -> dict[str, Handler]:
        return {
            "CounterGet": self._counter_get,
            "CounterIncrement": lambda r: self._counter(r, counter.CounterAdd(r.key, 1)),
            "CounterDecrement": lambda r: self._counter(r, counter.CounterSub(r.key, 1)),
            "CounterAdd": lambda r: self._counter(r, counter.CounterAdd(r.key, r.amount)),
            "CounterSubtract": lambda r: self._counter(r, counter.CounterSub(r.key, r.amount)),
            "CounterSet": lambda r: self._counter(r, counter.CounterSet(r.key, r.value)),
            "CounterCompareAndSet": lambda r: self._counter(
                r, counter.CounterCas(r.key, r.expected, r.new_value)
            ),
            "SignedCounterGet": self._signed_counter_get,
            "SignedCounterAdd": self._signed_counter_add,
            "SequenceNext": lambda r: self._sequence(r, 1),
            "SequenceReserve": lambda r: self._sequence(r, r.count),
            "SequenceCurrent": self._sequence_current,
            **self.lock_handlers(),
            **SemaphoreHandlers(self).handlers(),
            **QueueHandlers(self).handlers(),
            **BarrierHandlers(self).handlers(),
            **ServiceHandlers(self).handlers(),
        }

    async def _propose(self, layer: Layer[Any, Any], op: Op, size: int) -> Any:
        """Check `op` here (a bad request costs no log entry), then propose it with the leader's clock."""
        error = op.check()
        if error is not None:
            return layer.rejected(error)
        cmd: LayerCommand = layer.command(op, now_ms())
        result = await self._propose_raw(cmd, size + _OVERHEAD)
        if isinstance(result, LayerRejected):  # this node's machine lacks the layer: a build mismatch
            raise InternalError(result.error)
        return result

    def _view(self) -> KvView:
        return KvView(self._state.kv)

    # -------------------------------------------------------------------------------- counter --
    async def _counter(self, req: Any, op: counter.CounterOp) -> c.CounterResult:
        res: counter.CounterResult = await self._propose(counter.LAYER, op, len(req.key))
        return c.CounterResult(is_success=res.is_success, value=res.value, error=res.error)

    async def _counter_get(self, req: c.CounterGet) -> c.CounterResult:
        await self._barrier(False)
        res = counter.get(self._view(), req.key)
        return c.CounterResult(is_success=res.is_success, value=res.value, error=res.error)

    async def _signed_counter_get(self, req: c.SignedCounterGet) -> c.SignedCounterResult:
        await self._barrier(False)
        res = counter.get(self._view(), req.key, signed=True)
        return c.SignedCounterResult(is_success=res.is_success, value=res.value, error=res.error)

    async def _signed_counter_add(self, req: c.SignedCounterAdd) -> c.SignedCounterResult:
        op = counter.SignedCounterAdd(req.key, req.amount)
        res: counter.CounterResult = await self._propose(counter.LAYER, op, len(req.key))
        return c.SignedCounterResult(is_success=res.is_success, value=res.value, error=res.error)

    # ------------------------------------------------------------------------------- sequence --
    async def _sequence(self, req: c.SequenceNext | c.SequenceReserve, count: int) -> c.SequenceResult:
        op = sequence.SequenceReserve(req.key, count)
        res: sequence.SequenceResult = await self._propose(sequence.LAYER, op, len(req.key))
        return c.SequenceResult(is_success=res.is_success, value=res.value, error=res.error)

    async def _sequence_current(self, req: c.SequenceCurrent) -> c.SequenceResult:
        await self._barrier(False)
        res = sequence.current(self._view(), req.key)
        return c.SequenceResult(is_success=res.is_success, value=res.value, error=res.error)


__all__ = ["CoordinationHandlers", "now_ms"]
