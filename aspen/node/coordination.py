"""Dispatch of the coordination requests: wire request → layer op stamped with this node's clock →
one Raft proposal → layer result → wire response. Reads go through the read barrier and a layer
query over the local state.

Writes reach this code only on the leader (`service.RELAYED` includes `WRITE_REQUESTS`), so
`now_ms` is the leader's clock; it is read here, once, and travels inside the command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aspen.api.errors import InternalError
from aspen.kv import KvView, LayerCommand, LayerRejected
from aspen.layers.framework import Layer, Op
from aspen.node.coord_wait import now_ms
from aspen.node.state import NodeStateMachine

Propose = Callable[[Any, int], Awaitable[Any]]
Barrier = Callable[[bool], Awaitable[None]]
Handler = Callable[[Any], Awaitable[Any]]

#: Log entry size estimate for group-commit accounting: the key plus a fixed allowance.
_OVERHEAD = 64


class CoordinationHandlers:
    def __init__(self, *, propose: Propose, barrier: Barrier, state: NodeStateMachine) -> None:
        self._propose_raw = propose
        self._barrier = barrier
        self._state = state

    def handlers(self) -> dict[str, Handler]:
        return {}

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


__all__ = ["CoordinationHandlers", "now_ms"]
