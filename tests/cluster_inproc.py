"""An in-process Raft cluster: real drivers, real WALs in temp dirs, the in-memory transport.

Used by the driver tests and by `bench/raft_inmemory.py`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aspen import kv
from aspen.node.state import NodeStateMachine
from aspen.raft.core.types import StateRole
from aspen.raft.node import DriverConfig, RaftNode
from aspen.raft.transport import InMemoryNetwork


class InProcCluster:
    def __init__(self, root: Path, size: int = 3, *, tick_s: float = 0.02) -> None:
        self.root = root
        self.ids = list(range(1, size + 1))
        self.network = InMemoryNetwork()
        self.tick_s = tick_s
        self.nodes: dict[int, RaftNode] = {}
        self.states: dict[int, NodeStateMachine] = {}

    def _make(self, node_id: int) -> RaftNode:
        state = NodeStateMachine()
        node = RaftNode(
            DriverConfig(
                node_id=node_id,
                data_dir=self.root / f"n{node_id}",
                tick_interval_s=self.tick_s,
                election_tick=10,
                heartbeat_tick=2,
                seed=node_id,
            ),
            state,
        )
        self.states[node_id] = state
        self.nodes[node_id] = node
        return node

    async def start(self) -> None:
        for node_id in self.ids:
            node = self._make(node_id)
            await node.start(self.network.register(node_id, node.deliver))
        await asyncio.gather(*(n.bootstrap(self.ids) for n in self.nodes.values()))

    async def leader(self, timeout: float = 10.0) -> RaftNode:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            leaders = [n for n in self.nodes.values() if n.role == StateRole.LEADER]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(self.tick_s)  # simulated wall clock of the cluster; polled with a deadline
        raise AssertionError("no single leader elected in time")

    async def restart(self, node_id: int) -> RaftNode:
        await self.nodes[node_id].stop()
        node = self._make(node_id)
        await node.start(self.network.register(node_id, node.deliver))
        return node

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes.values()))

    async def converged(self, index: int, timeout: float = 30.0) -> bool:
        results = await asyncio.gather(*(n.wait_applied(index, timeout) for n in self.nodes.values()))
        return all(results)

    def hashes(self) -> set[str]:
        return {s.kv.state_hash() for s in self.states.values()}


async def write(node: RaftNode, key: str, value: bytes) -> kv.WriteResult:
    result: kv.WriteResult = await node.propose(kv.Write(key, value), size=len(key) + len(value))
    return result
