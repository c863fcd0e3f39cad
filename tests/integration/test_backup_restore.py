"""Backups: `aspen-cli cluster snapshot save FILE` on a live cluster, then `aspen-node restore` seeds
a NEW cluster from FILE that serves every key and grows with add-learner (issue 9, must show 2)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from harness import FAST_ELECTIONS, NodeProcess, cli, endpoint_addr, free_port, read_all, wait_for

from aspen.api import messages as m
from aspen.client import AspenClient
from aspen.kv import KvStateMachine
from aspen.node.backup import CHUNK_BYTES, TTL_S, BackupError, SnapshotExports, decode_image, encode_image

pytestmark = pytest.mark.integration

KEYS = 5_000


def node_on(root: Path, node_id: int, host: str, name: str) -> NodeProcess:
    return NodeProcess(
        node_id=node_id, data_dir=root / name, host=host, port=free_port(host), extra_args=FAST_ELECTIONS
    )


def restore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aspen.node", "restore", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        nodes = [node_on(tmp_path, i, f"127.0.0.{30 + i}", f"n{i}").start() for i in (1, 2, 3)]
        assert cli(nodes[0].ticket, "cluster", "init").code == 0
        for n in nodes[1:]:
            res = cli(
                nodes[0].ticket,
                "cluster",
                "add-learner",
                "--node-id",
                str(n.node_id),
                "--addr",
                endpoint_addr(n),
            )
            assert res.code == 0, res.stderr + res.stdout
        assert cli(nodes[0].ticket, "cluster", "change-membership", "1", "2", "3").code == 0
        yield nodes
    finally:
        for n in nodes:
            n.stop()


async def write_keys(ticket: str, count: int) -> dict[str, bytes]:
    written: dict[str, bytes] = {}
    async with AspenClient(ticket) as client:
        for start in range(0, count, 100):
            ops = [
                m.SetOperation(key=f"bk/{i:06d}", value=f"value-{i}".encode())
                for i in range(start, start + 100)
            ]
            res = await client.batch_write(ops)
            assert res.is_success, res.error
            written.update((op.key, op.value) for op in ops)
    return written


def test_save_on_live_cluster_then_restore_seeds_a_new_cluster_with_every_key(
    cluster: list[NodeProcess], tmp_path: Path
) -> None:
    written = asyncio.run(write_keys(cluster[0].ticket, KEYS))
    backup = tmp_path / "backup.aspen"
    # Saved through a follower's ticket: any node serves a consistent image after a ReadIndex round.
    res = cli(cluster[2].ticket, "--json", "cluster", "snapshot", "save", str(backup))
    assert res.code == 0, res.stderr
    meta = res.json()
    assert meta["status"] == "success" and meta["bytes"] == backup.stat().st_size
    assert meta["blake3"] == blake3.blake3(backup.read_bytes()).hexdigest()
    assert meta["applied_index"] >= KEYS // 100
    assert not backup.with_name(backup.name + ".part").exists()
    # The old trigger behaviour is still there, with and without the explicit subcommand.
    assert cli(cluster[0].ticket, "--json", "cluster", "snapshot").json()["status"] == "success"
    assert cli(cluster[0].ticket, "--json", "cluster", "snapshot", "trigger").json()["status"] == "success"

    restored_dir = tmp_path / "restored"
    out = restore("--from", str(backup), "--data-dir", str(restored_dir), "--node-id", "7")
    assert out.returncode == 0, out.stderr
    assert f"Restored {KEYS} keys" in out.stdout
    # A data dir that holds data is never overwritten.
    again = restore("--from", str(backup), "--data-dir", str(restored_dir), "--node-id", "7")
    assert again.returncode == 1 and "already holds Aspen data" in again.stderr

    seed = NodeProcess(
        node_id=7,
        data_dir=restored_dir,
        host="127.0.0.36",
        port=free_port("127.0.0.36"),
        cookie="another-cluster-cookie",
        extra_args=FAST_ELECTIONS,
    )
    joiner = node_on(tmp_path, 8, "127.0.0.37", "joiner")
    try:
        seed.start()
        # Serving at once as a one-node cluster, with every key and no `cluster init`.
        assert asyncio.run(read_all(seed.ticket, "bk/")) == written
        assert cli(seed.ticket, "cluster", "init").code == 1  # already initialised
        status = cli(seed.ticket, "--json", "cluster", "status").json()
        assert [(n["node_id"], n["is_voter"], n["is_leader"]) for n in status["nodes"]] == [(7, True, True)]
        assert cli(seed.ticket, "kv", "set", "after-restore", "yes").code == 0
        # It grows like any cluster: the new member reaches the seed through its recorded address.
        joiner.cookie = seed.cookie
        joiner.start()
        res = cli(seed.ticket, "cluster", "add-learner", "--node-id", "8", "--addr", endpoint_addr(joiner))
        assert res.code == 0, res.stderr + res.stdout
        assert cli(seed.ticket, "cluster", "change-membership", "7", "8").code == 0
        joiner_ticket = joiner.ticket
        wait_for(
            lambda: cli(joiner_ticket, "kv", "get", "after-restore", "--stale").stdout.strip() == "yes",
            timeout=30,
            interval=0.2,
            what="the joiner to catch up",
        )
        assert asyncio.run(read_all(joiner_ticket, "bk/")) == written
    finally:
        joiner.stop()
        seed.stop()


def test_restore_refuses_a_damaged_backup(cluster: list[NodeProcess], tmp_path: Path) -> None:
    asyncio.run(write_keys(cluster[0].ticket, 200))
    backup = tmp_path / "b.aspen"
    assert cli(cluster[0].ticket, "cluster", "snapshot", "save", str(backup)).code == 0
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    out = restore("--from", str(backup), "--data-dir", str(tmp_path / "r"))
    assert out.returncode == 1 and "damaged" in out.stderr
    assert not (tmp_path / "r" / "wal").exists()
    assert json.loads(cli(cluster[0].ticket, "--json", "cluster", "health").stdout)["status"] == "healthy"


def test_a_node_keeps_at_most_two_images_and_forgets_them_after_the_ttl() -> None:
    exports = SnapshotExports()
    first, _ = exports.add(b"a" * (CHUNK_BYTES + 10), applied_index=5, now=0.0)
    second, _ = exports.add(b"b", applied_index=6, now=1.0)
    third, _ = exports.add(b"c", applied_index=7, now=2.0)
    assert exports.chunk(first, 0, now=2.0) is None  # the oldest made room
    data, export = exports.chunk(third, 0, now=3.0) or (b"", None)
    assert data == b"c" and export is not None and export.applied_index == 7
    assert exports.chunk(third, 0, now=3.0) is None  # fully served: memory freed
    big, _ = exports.add(b"x" * (CHUNK_BYTES + 10), applied_index=8, now=4.0)
    head = exports.chunk(big, 0, now=4.0)
    assert head is not None and len(head[0]) == CHUNK_BYTES
    assert exports.chunk(second, 0, now=4.0 + TTL_S + 1) is None  # unused for longer than the TTL
    assert exports.chunk(big, CHUNK_BYTES, now=4.0 + TTL_S + 1) is None


def test_a_backup_file_checks_itself() -> None:
    kv_image = KvStateMachine().snapshot()
    data = encode_image(kv_image, applied_index=42, node_id=3, created_unix_ms=1)
    image = decode_image(data)
    assert (image.applied_index, image.node_id, image.kv) == (42, 3, kv_image)
    for damaged in (data[:-1] + bytes([data[-1] ^ 1]), b"NOTASPEN" + data[8:], data[:20]):
        with pytest.raises(BackupError):
            decode_image(damaged)
