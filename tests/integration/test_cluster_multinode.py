"""A 3-node cluster of real processes formed through `aspen-cli` (multi-node issue, must show 1-2)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import BackgroundWriter, NodeProcess, cli, majority_leader, read_all, running_cluster, wait_for

from aspen.api.errors import AspenError, OutcomeUnknownError
from aspen.api.messages import CompareAndSwapResult, WriteResult
from aspen.client import SyncAspenClient
from aspen.rpc.ticket import ClusterTicket

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    with running_cluster(tmp_path) as nodes:
        yield nodes


def all_peers_ticket(nodes: list[NodeProcess]) -> str:
    return cli(nodes[0].ticket, "--json", "cluster", "ticket").json()["ticket"]


def leader_of(nodes: list[NodeProcess], ticket: str) -> int:
    def find() -> int | None:
        res = cli(ticket, "--json", "cluster", "status", "--timeout", "3000")
        if res.code != 0:
            return None
        leaders = [n["node_id"] for n in res.json()["nodes"] if n["is_leader"]]
        return leaders[0] if leaders else None

    return wait_for(find, timeout=30, interval=0.2, what="a leader")


def test_a_cluster_formed_through_the_cli_lists_three_voters_and_one_leader(tmp_path: Path) -> None:
    # init, add-learner and change-membership through `aspen-cli`, as an operator would.
    with running_cluster(tmp_path, through_cli=True) as cluster:
        check_status_and_tickets(cluster)


def check_status_and_tickets(cluster: list[NodeProcess]) -> None:
    status = cli(cluster[1].ticket, "--json", "cluster", "status").json()
    assert sorted(n["node_id"] for n in status["nodes"]) == [1, 2, 3]
    assert all(n["is_voter"] for n in status["nodes"])
    assert sum(n["is_leader"] for n in status["nodes"]) == 1
    ticket = ClusterTicket.decode(all_peers_ticket(cluster))
    assert len(ticket.peers) == 3
    # Every node rewrote its ticket file with all members.
    for n in cluster:
        wait_for(lambda n=n: len(ClusterTicket.decode(n.ticket).peers) == 3, what="ticket rewrite")


def test_writes_through_every_node_are_read_on_every_node(cluster: list[NodeProcess]) -> None:
    for n in cluster:
        res = cli(n.ticket, "kv", "set", f"from-{n.node_id}", f"v{n.node_id}")
        assert res.code == 0, res.stderr
    for reader in cluster:
        for writer in cluster:
            got = cli(reader.ticket, "kv", "get", f"from-{writer.node_id}")
            assert got.stdout.strip() == f"v{writer.node_id}", (reader.node_id, got.stderr)
    # CAS and batches on a follower are forwarded to the leader.
    follower = cluster[2]
    assert cli(follower.ticket, "kv", "cas", "fc", "--new-value", "1").code == 0
    assert cli(follower.ticket, "--json", "kv", "batch-write", "x=1", "y=2").json()["is_success"] is True
    stale = cli(follower.ticket, "--json", "kv", "get", "x", "--stale")
    assert stale.code == 0


def _served(node: NodeProcess, operation: str) -> float:
    """How many `operation` requests `node` has handled (its aspen_rpc_requests_total counter)."""
    with SyncAspenClient(node.ticket, timeout=10) as client:
        text = client.metrics().prometheus_text
    pattern = re.compile(rf'^aspen_rpc_requests_total{{[^}}]*operation="{operation}"[^}}]*}} (\S+)$', re.M)
    return sum(float(v) for v in pattern.findall(text))


def test_a_follower_proposes_kv_writes_itself_and_the_leader_serves_none_of_them(
    cluster: list[NodeProcess],
) -> None:
    """Plain KV writes entering at a follower travel to the leader as Raft proposals (batched on
    the peer channel), not as relayed client requests; each caller still gets its own result."""
    leader_id = wait_for(lambda: majority_leader(cluster), what="leader")
    leader = next(n for n in cluster if n.node_id == leader_id)
    follower = next(n for n in cluster if n is not leader)
    before = _served(leader, "WriteKey"), _served(leader, "CompareAndSwapKey")

    async def through_follower() -> tuple[list[WriteResult], CompareAndSwapResult, CompareAndSwapResult]:
        from aspen.client import AspenClient

        async with AspenClient(follower.ticket, timeout=30) as client:
            writes = await asyncio.gather(*(client.set(f"fwd-{i:03d}", f"v{i}".encode()) for i in range(50)))
            won = await client.compare_and_swap("fwd-000", b"v0", b"won")
            lost = await client.compare_and_swap("fwd-000", b"v0", b"lost")
            return list(writes), won, lost

    writes, won, lost = asyncio.run(through_follower())
    assert all(w.is_success for w in writes)
    assert won.is_success and not lost.is_success and lost.actual_value == b"won"
    assert (_served(leader, "WriteKey"), _served(leader, "CompareAndSwapKey")) == before
    for node in cluster:
        with SyncAspenClient(node.ticket, timeout=10) as client:
            assert client.get("fwd-049") == b"v49" and client.get("fwd-000") == b"won"


def test_metrics_show_replication_on_the_leader(cluster: list[NodeProcess]) -> None:
    ticket = all_peers_ticket(cluster)
    leader = leader_of(cluster, ticket)
    node = next(n for n in cluster if n.node_id == leader)
    metrics = cli(node.ticket, "--json", "cluster", "metrics").json()
    assert metrics["state"] == "Leader"
    assert sorted(r["node_id"] for r in metrics["replication"]) == [1, 2, 3]
    health = cli(cluster[1].ticket, "--json", "cluster", "health").json()
    assert health["status"] == "healthy" and health["membership_node_count"] == 3


def test_cas_conflicts_are_detected_across_nodes(cluster: list[NodeProcess]) -> None:
    assert cli(cluster[0].ticket, "kv", "set", "acct", "100").code == 0
    first = cli(cluster[1].ticket, "--json", "kv", "cas", "acct", "--expected", "100", "--new-value", "90")
    second = cli(cluster[2].ticket, "--json", "kv", "cas", "acct", "--expected", "100", "--new-value", "80")
    assert first.code == 0 and first.json()["is_success"] is True
    assert (
        second.code == 1 and second.json()["status"] == "conflict" and second.json()["actual_value"] == "90"
    )
    for n in cluster:
        assert cli(n.ticket, "kv", "get", "acct").stdout.strip() == "90"


def test_leader_kill_fails_over_and_the_old_leader_rejoins(cluster: list[NodeProcess]) -> None:
    ticket = all_peers_ticket(cluster)
    writer = BackgroundWriter(ticket, "failover:").start()
    try:
        writer.wait_acked(50)
        old = wait_for(lambda: majority_leader(cluster), what="leader")
        victim = next(n for n in cluster if n.node_id == old)
        killed_at = time.monotonic()
        victim.kill9()
        survivors = [n for n in cluster if n is not victim]
        new = wait_for(lambda: (ld := majority_leader(survivors)) not in (None, old) and ld, timeout=30)
        elapsed = time.monotonic() - killed_at
        print(f"new leader {new} elected {elapsed:.2f}s after kill -9 of leader {old}")
        acked_before = len(writer.acked)
        writer.wait_acked(acked_before + 50)  # writes succeed again
        target = _applied(survivors[0])
        victim.start()
        wait_for(lambda: _applied(victim) >= target > 0, timeout=60, what="old leader catching up")
    finally:
        writer.stop()
    found = asyncio.run(read_all(ticket, "failover:"))
    lost = [k for k, v in writer.acked.items() if found.get(k) != v]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    stale = cli(victim.ticket, "--json", "kv", "scan", "failover:", "--limit", "10000", "--stale").json()
    assert stale["count"] >= len(writer.acked)


def test_a_write_forwarded_to_a_frozen_leader_fails_when_a_new_leader_is_elected(
    cluster: list[NodeProcess],
) -> None:
    """A follower does not hold a forwarded write for the whole forwarding timeout when its leader
    froze: once Raft elects another leader it answers TIMEOUT (outcome unknown) at once."""
    ticket = all_peers_ticket(cluster)
    old = wait_for(lambda: majority_leader(cluster), what="leader")
    victim = next(n for n in cluster if n.node_id == old)
    follower = next(n for n in cluster if n is not victim)
    victim.signal(signal.SIGSTOP)
    try:

        async def forwarded_write() -> str:
            from aspen.client import AspenClient

            async with AspenClient(follower.ticket, timeout=60) as client:
                try:
                    await client.set("frozen-leader", b"maybe")
                except OutcomeUnknownError as err:
                    return str(err)
            return "acknowledged"

        outcome = asyncio.run(forwarded_write())
        assert "lost leadership while the forwarded request was in flight" in outcome, outcome
    finally:
        victim.signal(signal.SIGCONT)
    # The cluster goes on, and the old leader rejoins as a follower.
    assert cli(ticket, "kv", "set", "after-freeze", "yes").code == 0
    wait_for(lambda: _applied(victim) >= _applied(follower) > 0, timeout=60, what="old leader catching up")


def _applied(node: NodeProcess | list[NodeProcess]) -> int:
    target = node if isinstance(node, NodeProcess) else node[0]
    try:
        with SyncAspenClient(target.ticket, timeout=2) as client:
            return client.raft_metrics().last_applied_index or 0
    except AspenError:
        return 0


def test_rolling_restart_with_a_writer_loses_no_acknowledged_write(cluster: list[NodeProcess]) -> None:
    ticket = all_peers_ticket(cluster)
    writer = BackgroundWriter(ticket, "roll:").start()
    try:
        writer.wait_acked(30)
        for n in cluster:
            assert n.stop() == 0
            n.start()
            assert "is_voter: true" in n.log()
            before = len(writer.acked)
            writer.wait_acked(before + 20, timeout=60)
    finally:
        writer.stop()
    found = asyncio.run(read_all(ticket, "roll:"))
    lost = [k for k, v in writer.acked.items() if found.get(k) != v]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    status = cli(ticket, "--json", "cluster", "status").json()
    assert sorted(n["node_id"] for n in status["nodes"]) == [1, 2, 3]
    print(f"rolling restart: {len(writer.acked)} writes acknowledged, {len(writer.errors)} retried errors")


def test_membership_errors_are_clear(cluster: list[NodeProcess]) -> None:
    t = cluster[0].ticket
    bare = cli(t, "cluster", "add-learner", "--node-id", "9", "--addr", "ab" * 32)
    assert bare.code == 1 and "bare EndpointId is not supported" in bare.stderr + bare.stdout
    empty = cli(
        t, "cluster", "add-learner", "--node-id", "9", "--addr", json.dumps({"id": "ab" * 32, "addrs": []})
    )
    assert empty.code == 1 and "no socket addresses" in empty.stderr + empty.stdout
    unknown = cli(t, "cluster", "change-membership", "1", "2", "3", "9")
    assert unknown.code == 1 and "not members" in unknown.stdout + unknown.stderr
