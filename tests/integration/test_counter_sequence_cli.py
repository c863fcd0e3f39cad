"""Counters and sequences on a 3-node cluster of real processes, through `aspen-cli` and the client:
every counter and sequence command, and no increment lost under contention (3 clients on 3
different nodes each increment a counter 200 times → exactly 600)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from harness import NodeProcess, cli, only, run_json, running_cluster, self_reported_leader, wait_for

from aspen.client import AspenClient, SyncAspenClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    # One cluster for the module: these tests use disjoint keys, and forming costs seconds of CPU.
    with running_cluster(tmp_path_factory.mktemp("layers"), base=40) as nodes:
        yield nodes


def test_every_counter_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    doc = {"key": "c", "is_success": True, "error": None}
    assert run_json(t1, "counter", "get", "c") == (0, {**doc, "operation": "get", "value": 0})
    assert run_json(t2, "counter", "incr", "c") == (0, {**doc, "operation": "incr", "value": 1})
    assert run_json(t3, "counter", "add", "c", "10") == (0, {**doc, "operation": "add", "value": 11})
    assert run_json(t1, "counter", "decr", "c") == (0, {**doc, "operation": "decr", "value": 10})
    assert run_json(t2, "counter", "sub", "c", "4") == (0, {**doc, "operation": "sub", "value": 6})
    # Unsigned: saturates at 0 and still succeeds.
    assert run_json(t3, "counter", "sub", "c", "100") == (0, {**doc, "operation": "sub", "value": 0})
    assert run_json(t1, "counter", "decr", "c") == (0, {**doc, "operation": "decr", "value": 0})
    assert run_json(t2, "counter", "set", "c", "42") == (0, {**doc, "operation": "set", "value": 42})
    ok = run_json(t3, "counter", "cas", "c", "--expected", "42", "--new-value", "43")
    assert ok == (0, {**doc, "operation": "cas", "value": 43})
    code, conflict = run_json(t1, "counter", "cas", "c", "--expected", "42", "--new-value", "44")
    assert code == 1 and conflict["is_success"] is False and conflict["value"] == 43
    assert conflict["error"] == "compare-and-set failed: value has changed"
    # Human output is the value; a failure exits 1 with the error.
    for n in cluster:
        assert cli(only(n), "counter", "get", "c").stdout.strip() == "43"
    human = cli(t2, "counter", "cas", "c", "--expected", "1", "--new-value", "2")
    assert human.code == 1 and "compare-and-set failed" in human.stdout
    # Signed counters share the key space; a negative value is no valid unsigned counter.
    assert run_json(t3, "counter", "signed-add", "s", "-5")[1]["value"] == -5
    assert cli(t1, "counter", "signed-get", "s").stdout.strip() == "-5"
    code, corrupt = run_json(t2, "counter", "get", "s")
    assert code == 1 and corrupt["error"] == "corrupted data in key '__coord:counter:s': not a valid u64"
    # Bad input: a precise error and exit 1 (domain) or 2 (usage), never a crash.
    code, empty = run_json(t1, "counter", "incr", "")
    assert code == 1 and empty["error"] == "key cannot be empty"
    assert cli(t1, "counter", "add", "c", "-1").code == 2
    assert cli(t1, "counter", "add", "c", str(2**64)).code == 2
    # The state is plain KV keys, visible in scans.
    # (Under a reserved prefix: a scan of it must ask for internal keys.)
    scan = cli(t1, "--json", "kv", "scan", "__coord:counter:", "--include-internal").json()
    assert {e["key"]: e["value"] for e in scan["entries"]} == {
        "__coord:counter:c": "43",
        "__coord:counter:s": "-5",
    }


def test_every_sequence_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    doc = {"key": "ids", "is_success": True, "error": None}
    assert run_json(t1, "sequence", "current", "ids") == (0, {**doc, "operation": "current", "value": 1})
    assert run_json(t2, "sequence", "next", "ids") == (0, {**doc, "operation": "next", "value": 1})
    assert run_json(t3, "sequence", "next", "ids") == (0, {**doc, "operation": "next", "value": 2})
    assert run_json(t1, "sequence", "reserve", "ids", "10") == (
        0,
        {**doc, "operation": "reserve", "value": 3},
    )
    assert cli(t2, "sequence", "next", "ids").stdout.strip() == "13"
    assert cli(t3, "sequence", "current", "ids").stdout.strip() == "14"
    code, zero = run_json(t1, "sequence", "reserve", "ids", "0")
    assert code == 1 and zero["is_success"] is False and "count must be between 1" in str(zero["error"])
    # Plain KV writes cannot reach the layer's keys; a reservation gets it near the end.
    assert cli(t1, "kv", "set", "__coord:seq:full", str(2**64 - 2)).code == 1
    assert cli(t1, "sequence", "reserve", "full", str(2**64 - 2)).stdout.strip() == "1"
    assert cli(t2, "sequence", "next", "full").stdout.strip() == str(2**64 - 1)
    code, exhausted = run_json(t3, "sequence", "next", "full")
    assert code == 1 and exhausted["error"] == "sequence exhausted"


def test_three_clients_on_three_nodes_increment_to_exactly_600(cluster: list[NodeProcess]) -> None:
    async def client_loop(node: NodeProcess) -> list[int]:
        values = []
        async with AspenClient(only(node), timeout=30) as client:
            hits = client.counter("hits")
            for _ in range(200):
                values.append(await hits.incr())
        return values

    async def go() -> list[list[int]]:
        return await asyncio.gather(*(client_loop(n) for n in cluster))

    per_client = asyncio.run(go())
    every = sorted(v for values in per_client for v in values)
    # Each increment saw a distinct value: none was lost or applied twice.
    assert every == list(range(1, 601))
    assert all(values == sorted(values) for values in per_client)
    for n in cluster:
        with SyncAspenClient(only(n)) as client:
            assert client.counter_get("hits").value == 600
    print("3 clients x 200 increments through nodes 1, 2, 3 -> counter = 600")


def test_sequence_ids_are_unique_across_nodes(cluster: list[NodeProcess]) -> None:
    async def take(node: NodeProcess) -> list[int]:
        async with AspenClient(only(node)) as client:
            seq = client.sequence("orders")
            return [await seq.next() for _ in range(30)] + [await seq.reserve(5)]

    async def go() -> list[list[int]]:
        return await asyncio.gather(*(take(n) for n in cluster))

    taken = asyncio.run(go())
    ids = [i for got in taken for i in got[:-1]] + [
        r + k for got in taken for r in got[-1:] for k in range(5)
    ]
    assert sorted(ids) == list(range(1, 91 + 15))
    assert all(got[:-1] == sorted(got[:-1]) for got in taken)


def _leader(nodes: list[NodeProcess]) -> int | None:
    leader = self_reported_leader(nodes)
    return None if leader is None else leader.node_id


def test_counter_and_sequence_survive_a_leader_kill(cluster: list[NodeProcess]) -> None:
    ticket = cli(only(cluster[0]), "--json", "cluster", "ticket").json()["ticket"]
    assert cli(ticket, "counter", "set", "durable", "77").code == 0
    assert cli(ticket, "sequence", "reserve", "durable", "9").code == 0
    old = wait_for(lambda: _leader(cluster), timeout=30, what="a leader")
    victim = next(n for n in cluster if n.node_id == old)
    victim.kill9()
    survivors = [n for n in cluster if n is not victim]
    try:
        wait_for(lambda: _leader(survivors), timeout=60, interval=0.2, what="a new leader")
        assert cli(ticket, "counter", "incr", "durable").stdout.strip() == "78"
        assert cli(ticket, "sequence", "next", "durable").stdout.strip() == "10"
    finally:
        victim.start()
    wait_for(
        lambda: cli(only(victim), "counter", "get", "durable", "--timeout", "5000").stdout.strip() == "78",
        timeout=60,
        interval=0.5,
        what="the restarted node serving the counter",
    )
