"""`cluster` commands against a real node, before and after init."""

from __future__ import annotations

import pytest
from harness import NodeProcess, cli

pytestmark = pytest.mark.integration


def test_health_works_before_init_and_other_requests_say_not_initialized(tmp_path) -> None:
    n = NodeProcess(node_id=7, data_dir=tmp_path / "n7").start()
    try:
        health = cli(n.ticket, "--json", "cluster", "health").json()
        assert health["status"] == "unhealthy" and health["is_initialized"] is False
        assert health["node_id"] == 7 and health["iroh_node_id"] == n.endpoint_id()
        res = cli(n.ticket, "kv", "get", "x", "--timeout", "4000")
        assert res.code == 1 and "NOT_INITIALIZED" in res.stderr
        assert cli(n.ticket, "cluster", "init").stdout.strip() == "Cluster initialized successfully"
        again = cli(n.ticket, "--json", "cluster", "init")
        assert again.code == 1 and again.json()["status"] == "failed"
        assert cli(n.ticket, "--json", "cluster", "health").json()["status"] == "healthy"
    finally:
        n.stop()


def test_status_metrics_ticket_and_prometheus(node: NodeProcess) -> None:
    status = cli(node.ticket, "--json", "cluster", "status").json()
    assert status["nodes"] == [
        {"node_id": 1, "endpoint_id": status["nodes"][0]["endpoint_id"], "is_leader": True, "is_voter": True}
    ]
    cli(node.ticket, "kv", "set", "m", "1")
    metrics = cli(node.ticket, "--json", "cluster", "metrics").json()
    assert metrics["state"] == "Leader" and metrics["current_leader"] == 1
    assert metrics["last_applied"] >= 1 and metrics["current_term"] >= 1
    ticket = cli(node.ticket, "--json", "cluster", "ticket").json()["ticket"]
    assert ticket.startswith("aspen")
    assert cli(ticket, "kv", "get", "m").stdout.strip() == "1"
    prom = cli(node.ticket, "--json", "cluster", "prometheus").json()
    assert prom["format"] == "prometheus"
    assert 'aspen_rpc_requests_total{node_id="1",operation="WriteKey"}' in prom["metrics"]
    assert "aspen_raft_term" in prom["metrics"]


def test_a_started_node_keeps_its_startup_heap_out_of_the_collectors_way(node: NodeProcess) -> None:
    # Full collections used to walk every module, model and TLS object built at start-up, about once
    # a second under load (docs/performance.md); the node freezes them once it is up.
    samples = _samples(cli(node.ticket, "--json", "cluster", "prometheus").json()["metrics"])
    assert samples["aspen_process_gc_frozen_objects"] > 10_000
    assert samples["process_resident_memory_bytes"] > 0
    assert samples['python_gc_collections_total{generation="2"}'] >= 1


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_node_logs_the_contract_lines(node: NodeProcess) -> None:
    log = node.log()
    assert "cluster ticket generated with direct addresses endpoint_id=" in log
    assert "direct_addrs=[127.0.0.1:" in log
    assert "startup begin: state:" in log and "is_voter:" in log
