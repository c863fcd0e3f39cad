"""Blobs in a real 3-node cluster, driven through `aspen-cli` (issue 5, must show 2, 3 and 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from harness import NodeProcess, cli, form_cluster, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodeProcess]]:
    # The leader re-replicates under-replicated blobs every second (default: every minute).
    monkeypatch.setenv("ASPEN_BLOBS_REPAIR_INTERVAL_S", "1")
    nodes: list[NodeProcess] = []
    try:
        yield form_cluster(tmp_path, nodes)
    finally:
        for n in nodes:
            n.stop()


def blob_file(node: NodeProcess, digest: str) -> Path:
    return node.data_dir / "blobs" / "data" / digest[:2] / digest


def file_hash(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            h = blake3.blake3()
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
            return h.hexdigest()
    except FileNotFoundError:
        return None


def replicas(node: NodeProcess, digest: str) -> list[int]:
    res = cli(node.ticket, "--json", "blob", "replication-status", digest, "--timeout", "5000")
    return res.json()["replica_nodes"] or [] if res.code == 0 else []


def add_file(node: NodeProcess, path: Path) -> str:
    res = cli(node.ticket, "--json", "blob", "add", str(path), timeout=180)
    assert res.code == 0, res.stderr
    digest: str = res.json()["hash"]
    return digest


def test_blob_added_on_one_node_is_readable_through_every_node(
    cluster: list[NodeProcess], tmp_path: Path
) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"replicated hello")
    large = tmp_path / "large.bin"
    large.write_bytes(os.urandom(6 * 1024 * 1024))  # above the inline limit: streamed
    for src in (small, large):
        started = time.monotonic()
        digest = add_file(cluster[0], src)
        for node in cluster[1:]:
            has = cli(node.ticket, "--json", "blob", "has", digest)
            assert has.code == 0 and has.json()["does_exist"] is True, has.stdout + has.stderr
            out = tmp_path / f"from-{node.node_id}-{src.name}"
            got = cli(node.ticket, "blob", "get", digest, "-o", str(out), timeout=120)
            assert got.code == 0, got.stderr
            assert out.read_bytes() == src.read_bytes()
        print(f"{src.name}: has+get on nodes 2 and 3 done {time.monotonic() - started:.2f}s after add")
        wait_for(lambda d=digest: replicas(cluster[1], d) == [1, 2, 3], timeout=60, what="3 replicas")
        print(f"{src.name}: 3 replicas recorded {time.monotonic() - started:.2f}s after add")
        status = cli(cluster[2].ticket, "--json", "blob", "replication-status", digest).json()
        assert status["status"] == "healthy" and status["replication_factor"] == 3
        assert status["replicas_needed"] == 0 and status["updated_at"] is not None
        for node in cluster:
            assert file_hash(blob_file(node, digest)) == digest


def test_node_killed_while_receiving_shows_no_partial_blob_and_catches_up(
    cluster: list[NodeProcess], tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(256 * 1024 * 1024))
    digest = blake3.blake3(src.read_bytes()).hexdigest()
    victim = cluster[2]
    tmp_dir = victim.data_dir / "blobs" / "tmp"
    adder = subprocess.Popen(
        [sys.executable, "-m", "aspen.cli", "--ticket", cluster[0].ticket, "blob", "add", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The moment node 3 has part of the blob in its temp dir, kill it.
        wait_for(
            lambda: any(p.stat().st_size > 0 for p in tmp_dir.glob("*.part")),
            timeout=120,
            interval=0.01,
            what="node 3 receiving the blob",
        )
        victim.kill9()
        assert adder.wait(timeout=180) == 0, adder.stderr.read() if adder.stderr else ""
    finally:
        if adder.poll() is None:
            adder.kill()
            adder.wait()
    assert list(tmp_dir.glob("*.part")), "the kill happened after the transfer ended"
    assert not blob_file(victim, digest).exists()  # no partial blob under the hash
    victim.start()
    assert list(tmp_dir.glob("*.part")) == []
    status = cli(victim.ticket, "--json", "blob", "status", digest).json()
    assert status["was_found"] is False or file_hash(blob_file(victim, digest)) == digest
    # The leader's repair loop copies the blob to node 3 again.
    wait_for(lambda: replicas(cluster[0], digest) == [1, 2, 3], timeout=120, what="replication to node 3")
    assert file_hash(blob_file(victim, digest)) == digest


def test_corrupt_replica_is_detected_and_repaired(cluster: list[NodeProcess], tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    data = os.urandom(5 * 1024 * 1024)
    src.write_bytes(data)
    digest = add_file(cluster[0], src)
    wait_for(lambda: replicas(cluster[0], digest) == [1, 2, 3], timeout=60, what="3 replicas")

    def corrupt(node: NodeProcess) -> Path:
        path = blob_file(node, digest)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        assert file_hash(path) != digest
        return path

    # 1. `blob repair` through node 1 makes every holder verify its copy; node 2's is replaced.
    bad = corrupt(cluster[1])
    res = cli(cluster[0].ticket, "--json", "blob", "repair", digest, timeout=120)
    assert res.code == 0, res.stdout + res.stderr
    assert sorted(res.json()["successful_nodes"]) == [1, 2, 3]
    assert file_hash(bad) == digest

    # 2. A read through a node whose copy is corrupt still returns the right bytes.
    bad = corrupt(cluster[2])
    out = tmp_path / "read.bin"
    got = cli(cluster[2].ticket, "blob", "get", digest, "-o", str(out), timeout=120)
    assert got.code == 0, got.stderr
    assert out.read_bytes() == data

    # 3. `blob repair-cycle` on a node scrubs its copies: a corrupt one is fetched again.
    bad = corrupt(cluster[1])
    cycle = cli(cluster[1].ticket, "--json", "blob", "repair-cycle")
    assert cycle.code == 0 and cycle.json() == {"is_success": True, "error": None}
    wait_for(lambda: file_hash(bad) == digest, timeout=60, what="node 2's copy repaired")
    wait_for(lambda: replicas(cluster[0], digest) == [1, 2, 3], timeout=60, what="3 replicas again")
