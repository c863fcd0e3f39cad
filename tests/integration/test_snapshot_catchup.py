"""A wiped node re-added catches up from a snapshot of 100,000 keys while the leader keeps serving
(multi-node issue, must show 4)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from harness import BackgroundWriter, NodeProcess, cli, endpoint_addr, form_cluster, read_all

from aspen.api import messages as m
from aspen.client import AspenClient

pytestmark = pytest.mark.integration

KEYS = 100_000
SNAP = ["--snapshot-entries", "500", "--snapshot-keep-entries", "10"]


async def load(ticket: str, n: int) -> None:
    async with AspenClient(ticket, timeout=60) as client:
        sem = asyncio.Semaphore(8)

        async def batch(start: int) -> None:
            async with sem:
                ops = [
                    m.SetOperation(key=f"bulk:{i:07d}", value=b"x" * 100) for i in range(start, start + 100)
                ]
                res = await client.batch_write(ops)
                assert res.is_success, res.error

        await asyncio.gather(*(batch(s) for s in range(0, n, 100)))


def test_wiped_node_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    nodes: list[NodeProcess] = []
    try:
        form_cluster(tmp_path, nodes, base=20, extra_args=SNAP)
        n1, _, n3 = nodes
        ticket = cli(n1.ticket, "--json", "cluster", "ticket").json()["ticket"]
        asyncio.run(load(ticket, KEYS))
        # However group commit packed the writes, compact every log now: a node added later can only
        # be seeded by a snapshot.
        for n in nodes:
            snap = cli(n.ticket, "--json", "cluster", "snapshot")
            assert snap.code == 0, snap.stderr

        # Remove node 3, wipe it (new identity, empty log), and add it back.
        assert cli(ticket, "cluster", "change-membership", "1", "2").code == 0
        n3.stop()
        shutil.rmtree(n3.data_dir)
        n3.start()
        probe = BackgroundWriter(ticket, "probe:").start()
        try:
            probe.wait_acked(20)
            res = cli(
                ticket, "--json", "cluster", "add-learner", "--node-id", "3", "--addr", endpoint_addr(n3)
            )
            assert res.code == 0, res.stdout + res.stderr
            assert cli(ticket, "cluster", "change-membership", "1", "2", "3").code == 0
            probe.wait_acked(len(probe.acked) + 20)
        finally:
            probe.stop()
        metrics = cli(n3.ticket, "--json", "cluster", "metrics").json()
        assert metrics["snapshot_index"] > 0, "node 3 should have been seeded by a snapshot"
        found = asyncio.run(read_all(n3.ticket, "bulk:"))
        assert len(found) == KEYS
        worst = max(probe.latencies)
        print(
            f"snapshot catch-up: {KEYS} keys; max leader write latency while it ran {worst * 1000:.0f} ms "
            f"over {len(probe.latencies)} writes, {len(probe.errors)} errors"
        )
    finally:
        for n in nodes:
            n.stop()
