"""`aspen-node --metrics-port`: every node of a 3-node cluster serves its Prometheus registry over HTTP
on its own host, and the counters move with the traffic (issue 9, must show 1)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import FAST_ELECTIONS, NodeProcess, cli, endpoint_addr, free_port, wait_for

from aspen.api import messages as m
from aspen.api.errors import InvalidRequestError
from aspen.client import AspenClient

pytestmark = pytest.mark.integration


async def ask_for_unknown_snapshot_chunk(ticket: str) -> None:
    async with AspenClient(ticket) as client:
        with pytest.raises(InvalidRequestError):
            await client.request(m.GetSnapshotChunk(snapshot_id="no-such-export", offset=0))


def scrape(node: NodeProcess, metrics_port: int) -> str:
    with urllib.request.urlopen(f"http://{node.host}:{metrics_port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        body: str = resp.read().decode()
        return body


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample, matching the given labels (others may be present)."""
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[tuple[NodeProcess, int]]]:
    """Three nodes on 127.0.0.21-23, each with a metrics port, formed as in test_cluster_multinode."""
    nodes: list[tuple[NodeProcess, int]] = []
    try:
        for i in (1, 2, 3):
            host = f"127.0.0.{20 + i}"
            mport = free_port(host)
            node = NodeProcess(
                node_id=i,
                data_dir=tmp_path / f"n{i}",
                host=host,
                port=free_port(host),
                extra_args=[*FAST_ELECTIONS, "--metrics-port", str(mport)],
            )
            nodes.append((node.start(), mport))
        first = nodes[0][0]
        assert cli(first.ticket, "cluster", "init").code == 0
        for node, _ in nodes[1:]:
            res = cli(
                first.ticket,
                "cluster",
                "add-learner",
                "--node-id",
                str(node.node_id),
                "--addr",
                endpoint_addr(node),
            )
            assert res.code == 0, res.stderr + res.stdout
        assert cli(first.ticket, "cluster", "change-membership", "1", "2", "3").code == 0
        yield nodes
    finally:
        for node, _ in nodes:
            node.stop()


def test_every_node_serves_raft_and_request_metrics_over_http(cluster: list[tuple[NodeProcess, int]]) -> None:
    first = cluster[0][0]

    # The leader is whoever every node names in aspen_raft_leader_id, once they agree.
    def agreed_leader() -> float | None:
        leaders = {sample(scrape(n, p), "aspen_raft_leader_id", node_id=str(n.node_id)) for n, p in cluster}
        return leaders.pop() if len(leaders) == 1 and leaders != {0.0} else None

    leader = wait_for(agreed_leader, timeout=30, interval=0.2, what="all nodes naming one leader")
    for node, port in cluster:
        text = scrape(node, port)
        nid = str(node.node_id)
        for name in (
            "aspen_raft_term",
            "aspen_raft_state",
            "aspen_raft_is_leader",
            "aspen_raft_last_log_index",
            "aspen_raft_last_applied_index",
            "aspen_raft_snapshot_index",
            "aspen_node_uptime_seconds",
        ):
            assert sample(text, name, node_id=nid) is not None, (name, nid)
        assert sample(text, "aspen_raft_term", node_id=nid) >= 1  # type: ignore[operator]
        assert sample(text, "aspen_raft_is_leader", node_id=nid) == (1.0 if node.node_id == leader else 0.0)
        assert "# TYPE aspen_rpc_duration_seconds histogram" in text
        assert "# TYPE aspen_raft_proposal_batch_commands histogram" in text
    # A write through the leader moves its request counter, latency histogram and batch histogram.
    leader_node, leader_port = next((n, p) for n, p in cluster if n.node_id == leader)
    lid = str(leader_node.node_id)
    before = scrape(leader_node, leader_port)
    writes_before = sample(before, "aspen_rpc_requests_total", node_id=lid, operation="WriteKey") or 0.0
    batches_before = sample(before, "aspen_raft_proposal_batch_commands_count", node_id=lid) or 0.0
    assert cli(leader_node.ticket, "kv", "set", "metered", "1").code == 0
    after = scrape(leader_node, leader_port)
    assert sample(after, "aspen_rpc_requests_total", node_id=lid, operation="WriteKey") == writes_before + 1
    assert (
        sample(after, "aspen_rpc_duration_seconds_count", node_id=lid, operation="WriteKey")
        == writes_before + 1
    )
    assert (
        sample(after, "aspen_raft_proposal_batch_commands_count", node_id=lid) or 0.0
    ) >= batches_before + 1
    # Errors are counted per operation and wire code.
    asyncio.run(ask_for_unknown_snapshot_chunk(leader_node.ticket))
    errors = sample(
        scrape(leader_node, leader_port),
        "aspen_rpc_errors_total",
        node_id=lid,
        operation="GetSnapshotChunk",
        code="INVALID_REQUEST",
    )
    assert errors == 1.0
    # The same text is what `cluster prometheus` returns through the RPC.
    res = cli(first.ticket, "--json", "cluster", "prometheus")
    assert res.code == 0 and "aspen_raft_leader_id" in res.json()["metrics"]


def test_metrics_endpoint_answers_404_elsewhere_and_is_off_by_default(tmp_path: Path) -> None:
    host = "127.0.0.24"
    mport = free_port(host)
    node = NodeProcess(
        node_id=1,
        data_dir=tmp_path / "n1",
        host=host,
        port=free_port(host),
        extra_args=["--metrics-port", str(mport)],
    ).start()
    plain = NodeProcess(node_id=2, data_dir=tmp_path / "n2", host=host, port=free_port(host)).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{host}:{mport}/nope", timeout=10)
        assert err.value.code == 404
        # Before `cluster init` the endpoint already works (node gauges; raft gauges appear after init).
        assert sample(scrape(node, mport), "aspen_node_uptime_seconds", node_id="1") is not None
        assert "metrics endpoint listening" not in plain.log()
    finally:
        node.stop()
        plain.stop()
