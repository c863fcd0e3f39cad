"""Acknowledged writes survive `kill -9`; a restarted node resumes its data and membership."""

from __future__ import annotations

import asyncio
import signal

import pytest
from harness import NodeProcess, cli

from aspen.client import AspenClient

pytestmark = pytest.mark.integration


async def _write_many(ticket: str, n: int) -> None:
    async with AspenClient(ticket, timeout=30) as client:
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with sem:
                res = await client.set(f"durable:{i:04d}", f"value-{i}".encode())
                assert res.is_success, res.error

        await asyncio.gather(*(one(i) for i in range(n)))


async def _count(ticket: str) -> dict[str, bytes]:
    async with AspenClient(ticket, timeout=30) as client:
        res = await client.scan("durable:", limit=10_000)
        return {e.key: e.value for e in res.entries}


def test_thousand_acknowledged_writes_survive_kill_9(node: NodeProcess) -> None:
    asyncio.run(_write_many(node.ticket, 1000))
    node.kill9()
    node.start()
    got = asyncio.run(_count(node.ticket))
    assert len(got) == 1000
    assert all(got[f"durable:{i:04d}"] == f"value-{i}".encode() for i in range(1000))
    # A restarted node is still initialised: init fails, writes work.
    assert cli(node.ticket, "--json", "cluster", "init").json()["status"] == "failed"
    assert cli(node.ticket, "kv", "set", "after", "restart").code == 0


def test_sigterm_is_a_clean_stop_and_restart_resumes(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "k", "v")
    node.signal(signal.SIGTERM)
    assert node.proc is not None and node.proc.wait(timeout=20) == 0
    node.start()
    assert cli(node.ticket, "kv", "get", "k").stdout.strip() == "v"


def test_data_survives_snapshot_and_restart(tmp_path) -> None:
    n = NodeProcess(node_id=3, data_dir=tmp_path / "n3", extra_args=["--snapshot-entries", "50"]).start()
    try:
        assert cli(n.ticket, "cluster", "init").code == 0
        asyncio.run(_write_many(n.ticket, 300))
        snap = cli(n.ticket, "--json", "cluster", "snapshot").json()
        assert snap["status"] == "success" and snap["snapshot_index"] > 0
        n.kill9()
        n.start()
        assert len(asyncio.run(_count(n.ticket))) == 300
        assert cli(n.ticket, "--json", "cluster", "metrics").json()["snapshot_index"] > 0
    finally:
        n.stop()
