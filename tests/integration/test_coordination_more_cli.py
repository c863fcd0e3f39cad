"""Semaphores, queues, barriers and the service registry on a 3-node cluster of real processes,
through `aspen-cli` (every command of reference §6.6 `semaphore`/`queue`/`barrier` and §6.8
`service`) and the client library, each command entering the cluster at a different node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from harness import NodeProcess, cli, form_cluster

from aspen.client import AspenClient
from aspen.rpc.ticket import ClusterTicket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    # One cluster for the module: the tests use disjoint names, and forming costs seconds of CPU.
    nodes: list[NodeProcess] = []
    try:
        yield form_cluster(tmp_path_factory.mktemp("coord"), nodes, base=70)
    finally:
        for n in nodes:
            n.stop()


def only(node: NodeProcess) -> str:
    """A ticket naming this node alone, so every request of its client enters the cluster there."""
    ticket = ClusterTicket.decode(node.ticket)
    return ClusterTicket(cookie=ticket.cookie, peers=ticket.peers[:1]).encode()


def run_json(ticket: str, *args: str) -> tuple[int, dict[str, object]]:
    res = cli(ticket, "--json", *args)
    assert res.stdout, res.stderr
    return res.code, res.json()


# -------------------------------------------------------------------------------------- semaphore --
def test_every_semaphore_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    base = {"name": "pool", "error": None, "retry_after_ms": None}
    code, doc = run_json(
        t1, "semaphore", "try-acquire", "pool", "--holder", "a", "--capacity", "3", "--permits", "2"
    )
    assert (code, doc) == (
        0,
        {
            **base,
            "operation": "try_acquire",
            "is_success": True,
            "permits_acquired": 2,
            "available": 1,
            "max_permits": 3,
            "capacity_permits": 3,
        },
    )
    code, doc = run_json(
        t2, "semaphore", "acquire", "pool", "--holder", "b", "--capacity", "3", "--timeout", "5000"
    )
    assert code == 0 and doc["operation"] == "acquire" and doc["permits_acquired"] == 1
    assert doc["available"] == 0 and doc["capacity_permits"] == 3 == doc["max_permits"]
    # Full: try-acquire fails at once with a retry hint, acquire waits and then times out.
    code, full = run_json(t3, "semaphore", "try-acquire", "pool", "--holder", "c", "--capacity", "3")
    assert code == 1 and full["is_success"] is False and full["error"] is None
    assert isinstance(full["retry_after_ms"], int) and full["retry_after_ms"] > 0
    human = cli(t3, "semaphore", "try-acquire", "pool", "--holder", "c", "--capacity", "3")
    assert human.code == 1 and human.stdout.startswith("No permits available. Retry after ")
    code, timed_out = run_json(
        t3, "semaphore", "acquire", "pool", "--holder", "c", "--capacity", "3", "--timeout", "300"
    )
    assert code == 1 and timed_out["error"] == "semaphore acquire timeout"
    assert cli(t1, "semaphore", "status", "pool").stdout.strip() == "Available: 0/3"
    assert cli(t2, "semaphore", "release", "pool", "--holder", "a", "--permits", "1").stdout.strip() == (
        "Released (1/3 available)"
    )
    code, released = run_json(t3, "semaphore", "release", "pool", "--holder", "a")
    assert code == 0 and released["operation"] == "release" and released["available"] == 2
    human = cli(t1, "semaphore", "acquire", "pool", "--holder", "c", "--capacity", "3", "--permits", "2")
    assert human.code == 0 and human.stdout.strip() == "Acquired 2 permits (0/3 available)"
    code, st = run_json(t2, "semaphore", "status", "pool")
    assert (code, st["operation"], st["available"], st["capacity_permits"]) == (0, "status", 0, 3)
    # Bad input: a precise error and exit 1, or a usage error (exit 2).
    code, bad = run_json(t1, "semaphore", "try-acquire", "pool", "--holder", "", "--capacity", "3")
    assert code == 1 and bad["error"] == "holder id cannot be empty"
    assert cli(t1, "semaphore", "try-acquire", "pool", "--holder", "x", "--capacity", "0").code == 2


def test_semaphore_acquire_waits_for_a_release_and_ttl_expiry(cluster: list[NodeProcess]) -> None:
    t1, t2, _ = (only(n) for n in cluster)
    assert (
        cli(t1, "semaphore", "try-acquire", "one", "--holder", "a", "--capacity", "1", "--ttl", "600").code
        == 0
    )
    # Holder a is never released: its TTL (judged by the leader's clock) frees the permit.
    waited = cli(t2, "semaphore", "acquire", "one", "--holder", "b", "--capacity", "1", "--timeout", "20000")
    assert waited.code == 0, waited.stdout + waited.stderr

    async def go() -> None:
        async with (
            AspenClient(only(cluster[2])) as client,
            client.semaphore("one", capacity=1, ttl_ms=30_000, timeout_ms=1) as held,
        ):
            raise AssertionError(f"acquired {held} while b holds the only permit")

    with pytest.raises(Exception, match="semaphore acquire timeout"):
        asyncio.run(go())

    async def release_then_acquire() -> int:
        async with AspenClient(only(cluster[2])) as client:
            await client.semaphore_release("one", "b")
            async with client.semaphore("one", capacity=1, ttl_ms=30_000) as held:
                status = await client.semaphore_status("one")
                assert status.available == 0
            status = await client.semaphore_status("one")
            assert status.available == 1
            return held

    assert asyncio.run(release_then_acquire()) == 1
