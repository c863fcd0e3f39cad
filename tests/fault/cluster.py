"""A 3-node cluster of real `aspen-node` processes plus the faults the nemesis injects into it.

Each node has its own loopback address (127.0.0.{11,12,13}); its peer TCP sockets bind that
address, so iptables rules matching source and destination address cut exactly the traffic
between two nodes. The test driver's clients connect from 127.0.0.1, which no rule touches.

One caveat of the product worth knowing when reading partition results: a follower forwards
writes to the leader over the *client* RPC, and `RpcClient` binds 127.0.0.1 for loopback
destinations, so forwarded requests are not cut by these rules (Raft traffic is).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness import COOKIE, NodeProcess, form_cluster, wait_for

from aspen.api.errors import AspenError
from aspen.client import AspenClient
from aspen.rpc.ticket import ClusterTicket, TicketPeer

#: The slowest election timeout of `harness.FAST_ELECTIONS`, which the nodes run with.
ELECTION_TIMEOUT_MAX_S = 1.2


def single_node_ticket(node: NodeProcess) -> str:
    """A ticket naming only `node`, so a client using it talks to that node and no other."""
    peer = TicketPeer(node.endpoint_id(), (f"{node.host}:{node.port}",))
    return ClusterTicket(cookie=COOKIE, peers=(peer,)).encode()


# ------------------------------------------------------------------------------- firewall --
def iptables_missing_reason() -> str | None:
    """Why partition scenarios cannot run here (None if they can). Must be called inside the
    network namespace the scenario will use."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    probe = subprocess.run(["iptables", "-L", "INPUT", "-n"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"iptables does not work here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def iptables(*args: str) -> None:
    res = subprocess.run(["iptables", *args], capture_output=True, timeout=20)
    if res.returncode != 0:
        raise AssertionError(f"iptables {' '.join(args)}: {res.stderr.decode(errors='replace')}")


def drop_between(a: str, b: str, probability: float | None = None) -> int:
    """Drop traffic a→b and b→a (TCP peer traffic and QUIC alike: no protocol match). Returns rules added."""
    for src, dst in ((a, b), (b, a)):
        rule = ["-A", "INPUT", "-s", src, "-d", dst]
        if probability is not None:
            rule += ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.3f}"]
        iptables(*rule, "-j", "DROP")
    return 2


def heal_network() -> None:
    iptables("-F", "INPUT")


# ------------------------------------------------------------------------------- the cluster --
@dataclass
class Cluster:
    root: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    tickets: dict[int, str] = field(default_factory=dict)
    paused: set[int] = field(default_factory=set)

    def start(self) -> Cluster:
        form_cluster(self.root, self.nodes)
        self.tickets = {n.node_id: single_node_ticket(n) for n in self.nodes}
        return self

    def node(self, node_id: int) -> NodeProcess:
        return next(n for n in self.nodes if n.node_id == node_id)

    def stop(self) -> None:
        for n in self.nodes:
            if n.node_id in self.paused and n.proc is not None and n.proc.poll() is None:
                n.signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            n.stop()

    # -- observation --------------------------------------------------------------------
    async def _metrics(self, node_id: int, timeout: float) -> tuple[str, int, int | None] | None:
        try:
            async with AspenClient(self.tickets[node_id], timeout=timeout) as c:
                m = await c.raft_metrics()
                return m.state, m.current_term, m.current_leader
        except AspenError:
            return None

    def leader(self, *, timeout: float = 30.0) -> int:
        """The one node that says it leads, agreed on by a majority of the others."""

        async def poll() -> int | None:
            views = await asyncio.gather(*(self._metrics(n.node_id, 1.0) for n in self.nodes))
            leaders = [n.node_id for n, v in zip(self.nodes, views, strict=True) if v and v[0] == "Leader"]
            if len(leaders) != 1:
                return None
            agree = sum(1 for v in views if v and v[2] == leaders[0])
            return leaders[0] if agree * 2 > len(self.nodes) else None

        leader: int = wait_for(lambda: asyncio.run(poll()), timeout=timeout, interval=0.1, what="one leader")
        return leader

    def converge(self, *, timeout: float = 30.0) -> tuple[int, str]:
        """Wait until every node has applied the same index; then their state hashes must agree."""

        async def hashes() -> list[tuple[int, str, int] | None]:
            async def one(node_id: int) -> tuple[int, str, int] | None:
                try:
                    async with AspenClient(self.tickets[node_id], timeout=2.0) as c:
                        h = await c.state_hash()
                        return h.applied_index, h.state_hash, h.key_count
                except AspenError:
                    return None

            return await asyncio.gather(*(one(n.node_id) for n in self.nodes))

        def same_index() -> list[tuple[int, str, int]] | None:
            got = asyncio.run(hashes())
            if any(g is None for g in got):
                return None
            done = [g for g in got if g is not None]
            return done if len({g[0] for g in done}) == 1 else None

        final = wait_for(same_index, timeout=timeout, interval=0.2, what="equal applied index on all nodes")
        states = {g[1] for g in final}
        assert len(states) == 1, f"replicas diverged at index {final[0][0]}: {final}"
        return final[0][0], final[0][1]

    # -- faults -------------------------------------------------------------------------
    def kill9(self, node_id: int) -> None:
        self.node(node_id).kill9()

    def restart(self, node_id: int) -> None:
        self.node(node_id).start()

    def pause(self, node_id: int) -> None:
        self.node(node_id).signal(signal.SIGSTOP)
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        self.node(node_id).signal(signal.SIGCONT)
        self.paused.discard(node_id)

    def isolate(self, group: list[int]) -> int:
        """Cut every link between `group` and the rest. Returns the number of rules added."""
        rules = 0
        for a in self.nodes:
            for b in self.nodes:
                if a.node_id < b.node_id and (a.node_id in group) != (b.node_id in group):
                    rules += drop_between(a.host, b.host)
        return rules

    def lossy(self, probability: float) -> int:
        rules = 0
        for a in self.nodes:
            for b in self.nodes:
                if a.node_id < b.node_id:
                    rules += drop_between(a.host, b.host, probability)
        return rules

    def alive(self) -> bool:
        return all(n.proc is not None and n.proc.poll() is None for n in self.nodes)
