"""How Raft messages leave a node. The driver only ever calls `send`, which must not block.

`InMemoryNetwork` connects drivers in one process (tests, benchmarks); the network transport over
TLS/TCP is `aspen.peer.transport.TcpTransport`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aspen.raft.core.types import Message, NodeId

Deliver = Callable[[Message], None]


class Transport(Protocol):
    def send(self, msg: Message) -> None:
        """Queue `msg` for `msg.to`. Never blocks; may drop (Raft retries)."""

    async def close(self) -> None: ...


class InMemoryNetwork:
    """A loss-free in-process network; `cut(a, b)` drops traffic between two nodes (both ways),
    `cut_one_way(a, b)` only what `a` sends to `b`."""

    def __init__(self) -> None:
        self._nodes: dict[NodeId, Deliver] = {}
        self._cut: set[frozenset[NodeId]] = set()
        self._one_way: set[tuple[NodeId, NodeId]] = set()

    def register(self, node_id: NodeId, deliver: Deliver) -> InMemoryTransport:
        self._nodes[node_id] = deliver
        return InMemoryTransport(self, node_id)

    def unregister(self, node_id: NodeId) -> None:
        self._nodes.pop(node_id, None)

    def cut(self, a: NodeId, b: NodeId) -> None:
        self._cut.add(frozenset((a, b)))

    def cut_one_way(self, frm: NodeId, to: NodeId) -> None:
        self._one_way.add((frm, to))

    def heal(self) -> None:
        self._cut.clear()
        self._one_way.clear()

    def _deliver(self, frm: NodeId, msg: Message) -> None:
        if frozenset((frm, msg.to)) in self._cut or (frm, msg.to) in self._one_way:
            return
        target = self._nodes.get(msg.to)
        if target is not None:
            # Delivered on a later loop turn, as a real network would: never re-entrantly.
            asyncio.get_running_loop().call_soon(target, msg)


class InMemoryTransport:
    def __init__(self, network: InMemoryNetwork, node_id: NodeId) -> None:
        self._network = network
        self._id = node_id

    def send(self, msg: Message) -> None:
        self._network._deliver(self._id, msg)

    async def close(self) -> None:
        self._network.unregister(self._id)
