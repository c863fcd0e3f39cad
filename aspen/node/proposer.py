"""The one seam between a node's request handlers and its state machine.

A handler gets a `Proposer` and nothing else of the node: it proposes commands (a layer op is
stamped with this node's clock: handlers of writes run only on the leader, so it is the leader's
clock that enters the log; the handler has checked the op, so a bad request costs no log entry, and
apply checks it again), waits for a
linearizable read barrier, reads the applied state, reads the clock, and waits for the applied
state to change (`waiter`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aspen.api.errors import InternalError
from aspen.kv import KvView, LayerCommand, LayerRejected
from aspen.layers.framework import Layer, Op
from aspen.node.clock import now_ms
from aspen.node.state import NodeStateMachine
from aspen.node.waiter import Waiter
from aspen.raft.node import RaftNode

#: Deadline for one proposal or read barrier inside the node (the client has its own, longer one).
WRITE_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0
#: Log entry size estimate for group-commit accounting of a layer op: its strings plus an allowance.
_OVERHEAD = 64


def op_size(value: Any) -> int:
    """Bytes of the strings and bytes in an op (the bulk of its log entry), nested ones included."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, tuple):
        return sum(op_size(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(op_size(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


class Proposer:
    def __init__(self, raft: RaftNode, state: NodeStateMachine) -> None:
        self._raft = raft
        self._state = state
        #: Where blocking handlers park until the keys that block them change (aspen.node.waiter).
        self.waiter = Waiter(state.kv)

    async def propose(self, command: Any, size: int, *, forward: bool = False) -> Any:
        """Commit `command` and return what applying it returned. `forward`: a follower hands the
        entry to the leader itself (plain KV writes, which carry no clock)."""
        return await self._raft.propose(command, size=size, timeout=WRITE_TIMEOUT_S, forward=forward)

    async def propose_op(self, layer: Layer[Any, Any], op: Op) -> Any:
        """Propose the (checked) `op` with this, the leader's, clock; the layer's result."""
        cmd: LayerCommand = layer.command(op, self.now_ms())
        result = await self.propose(cmd, op_size(op) + _OVERHEAD)
        if isinstance(result, LayerRejected):  # this node's machine lacks the layer: a build mismatch
            raise InternalError(result.error)
        return result

    async def barrier(self, stale: bool = False) -> None:
        """Wait until this node has applied everything committed when the call began (ReadIndex);
        `stale` skips it (the caller asked for a possibly stale read)."""
        if not stale:
            await self._raft.read_barrier(timeout=READ_TIMEOUT_S)

    def view(self) -> KvView:
        """A read-only view of the applied state."""
        return KvView(self._state.kv)

    def now_ms(self) -> int:
        return now_ms()


__all__ = ["READ_TIMEOUT_S", "WRITE_TIMEOUT_S", "Proposer", "op_size"]
