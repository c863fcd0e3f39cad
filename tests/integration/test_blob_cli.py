"""`aspen-cli blob …` against one real node: JSON shapes, exit codes, streaming, protection and GC
(issue 5, must show 1 at 64 MiB and must show 5)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from harness import NodeProcess, cli, wait_for

from aspen.client import AspenClient
from aspen.rpc.bulk import BulkError, BulkTarget, download

pytestmark = pytest.mark.integration

BAD_HASH = "not-a-hash"


@pytest.fixture
def gc_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeProcess]:
    """A one-node cluster whose GC runs every 0.2 s with a 1 s grace period."""
    monkeypatch.setenv("ASPEN_BLOBS_GC_INTERVAL_S", "0.2")
    monkeypatch.setenv("ASPEN_BLOBS_GC_GRACE_S", "1")
    monkeypatch.setenv("ASPEN_BLOBS_MAX_SIZE", str(6 * 1024 * 1024))
    n = NodeProcess(node_id=1, data_dir=tmp_path / "node1").start()
    try:
        assert cli(n.ticket, "cluster", "init").code == 0
        yield n
    finally:
        n.stop()


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def test_add_get_has_status_list_shapes(node: NodeProcess, tmp_path: Path) -> None:
    t = node.ticket
    added = cli(t, "--json", "blob", "add", "--data", "hello blobs", "--tag", "greeting")
    assert added.code == 0, added.stderr
    doc = added.json()
    assert set(doc) == {"is_success", "hash", "size_bytes", "was_new", "error"}
    assert doc["is_success"] is True and doc["hash"] == b3(b"hello blobs") and doc["size_bytes"] == 11
    h = doc["hash"]
    human = cli(t, "blob", "add", "--data", "hello blobs")
    assert human.code == 0 and human.stdout.strip() == f"{h} (11 bytes, exists)"

    assert cli(t, "blob", "get", h).stdout.strip() == "hello blobs"
    got = cli(t, "--json", "blob", "get", h).json()
    assert got == {"was_found": True, "size_bytes": 11, "error": None}
    # To stdout, the bytes are the whole output, JSON mode or not (nothing printed after them).
    assert cli(t, "--json", "blob", "get", h, "-o", "-").stdout == "hello blobs"
    assert cli(t, "--json", "blob", "has", h).json() == {"hash": h, "does_exist": True, "error": None}
    status = cli(t, "--json", "blob", "status", h).json()
    assert status["was_found"] and status["complete"] and "user:greeting" in status["tags"]
    listed = cli(t, "--json", "blob", "list").json()
    assert {"hash": h, "size_bytes": 11} in listed["blobs"] and listed["has_more"] is False

    stdin = cli(t, "--json", "blob", "add", "-", stdin=b"\xff\xfebinary")
    assert stdin.code == 0 and stdin.json()["hash"] == b3(b"\xff\xfebinary")
    assert cli(t, "blob", "get", stdin.json()["hash"]).stdout.strip() == "<binary: 8 bytes>"
    out = tmp_path / "out.bin"
    wrote = cli(t, "blob", "get", stdin.json()["hash"], "-o", str(out))
    assert wrote.code == 0 and wrote.stdout.strip() == f"Wrote 8 bytes to {out}"
    assert out.read_bytes() == b"\xff\xfebinary"


def test_missing_and_malformed_hashes_fail_with_exit_1(node: NodeProcess) -> None:
    t = node.ticket
    missing = "0" * 64
    has = cli(t, "--json", "blob", "has", missing)
    assert has.code == 1 and has.json()["does_exist"] is False
    bad = cli(t, "--json", "blob", "has", BAD_HASH)
    assert bad.code == 1 and bad.json()["error"].startswith("invalid hash")
    get = cli(t, "--json", "blob", "get", missing)
    assert get.code == 1 and get.json()["was_found"] is False
    assert cli(t, "blob", "status", missing).code == 1
    repl = cli(t, "--json", "blob", "replication-status", missing)
    assert repl.code == 1 and repl.json()["was_found"] is False
    assert cli(t, "blob", "add").code == 2  # usage: nothing to add
    assert cli(t, "blob", "get", BAD_HASH).code == 1


def test_64_mib_blob_streams_both_ways_byte_exact(node: NodeProcess, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(64 * 1024 * 1024)
    src.write_bytes(data)
    added = cli(node.ticket, "--json", "blob", "add", str(src), timeout=120)
    assert added.code == 0, added.stderr
    h = added.json()["hash"]
    assert h == b3(data) and added.json()["size_bytes"] == len(data)
    dest = tmp_path / "back.bin"
    got = cli(node.ticket, "--json", "blob", "get", h, "-o", str(dest), timeout=120)
    assert got.code == 0, got.stderr
    assert got.json()["size_bytes"] == len(data)
    assert dest.read_bytes() == data
    # Without -o a large blob is not dumped on the terminal.
    assert "use -o FILE" in cli(node.ticket, "blob", "get", h).stdout
    status = cli(node.ticket, "--json", "blob", "replication-status", h).json()
    assert status["replica_nodes"] == [1] and status["status"] == "healthy"


def test_protect_unprotect_delete_and_gc(gc_node: NodeProcess) -> None:
    t = gc_node.ticket
    kept = cli(t, "--json", "blob", "add", "--data", "kept", "--tag", "keep").json()["hash"]
    loose = cli(t, "--json", "blob", "add", "--data", "loose").json()["hash"]
    protected = cli(t, "--json", "blob", "add", "--data", "protected").json()["hash"]
    assert cli(t, "--json", "blob", "protect", protected, "--tag", "p1").json() == {
        "operation": "protect",
        "is_success": True,
        "error": None,
    }
    # delete drops the user and store tags of `loose` and `kept`; GC then collects both...
    assert cli(t, "--json", "blob", "delete", loose).json() == {"is_success": True, "error": None}
    assert cli(t, "blob", "delete", kept).stdout.strip() == "deleted"
    # ...but unprotect removes only the named tag: `protected` still has its store tag.
    unprot = cli(t, "--json", "blob", "unprotect", "p1").json()
    assert unprot == {"operation": "unprotect", "is_success": True, "error": None}
    assert cli(t, "--json", "blob", "unprotect", "never-existed").json()["is_success"] is True

    def present(h: str) -> bool:
        return cli(t, "--json", "blob", "status", h).json()["was_found"]

    wait_for(lambda: not present(loose) and not present(kept), timeout=30, what="GC of deleted blobs")
    assert present(protected)
    assert cli(t, "--json", "blob", "get", loose).json()["was_found"] is False
    # A collected blob's holder record is gone too.
    assert cli(t, "--json", "blob", "replication-status", loose).json()["was_found"] is False
    # Deleting again: nothing left to delete.
    again = cli(t, "--json", "blob", "delete", loose)
    assert again.code == 1 and "not found" in again.json()["error"]
    # A protected blob is kept while its user tag exists, even after delete of its store tag... and
    # delete removes user tags too (reference: DeleteBlob drops every user:* tag of the hash).
    assert cli(t, "blob", "protect", protected, "--tag", "p2").code == 0
    assert "user:p2" in cli(t, "--json", "blob", "status", protected).json()["tags"]
    assert cli(t, "blob", "delete", protected).code == 0
    wait_for(lambda: not present(protected), timeout=30, what="GC after delete of a protected blob")


def test_size_limit_is_enforced(gc_node: NodeProcess, tmp_path: Path) -> None:
    src = tmp_path / "too-big.bin"
    src.write_bytes(b"x" * (6 * 1024 * 1024 + 1))
    res = cli(gc_node.ticket, "--json", "blob", "add", str(src))
    assert res.code == 1 and res.json()["is_success"] is False
    assert "exceeds the limit" in res.json()["error"]


def test_transfer_tokens_are_one_time_and_the_node_is_pinned(node: NodeProcess, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    digest = cli(node.ticket, "--json", "blob", "add", "-", stdin=data).json()["hash"]

    async def scenario() -> None:
        async with AspenClient(node.ticket) as client:
            res = await client.get_blob(digest)
            assert res.is_streaming and res.transfer is not None and res.data is None
            t = res.transfer
            target = BulkTarget(
                t.endpoint_id, tuple((a.split(":")[0], int(a.split(":")[1])) for a in t.addrs), t.token
            )
            got = bytearray()
            assert download(target, got.extend, offset=0, timeout=10) == len(data)
            assert bytes(got) == data
            with pytest.raises(BulkError, match="unknown or expired"):
                download(target, got.extend, offset=0, timeout=10)  # the token was used up
            fresh = (await client.get_blob(digest)).transfer
            assert fresh is not None
            impostor = BulkTarget("ab" * 32, target.addrs, fresh.token)
            with pytest.raises(BulkError, match="pinned"):
                download(impostor, got.extend, offset=0, timeout=10)
            # Resuming from an offset returns exactly the rest.
            tail = bytearray()
            good = BulkTarget(t.endpoint_id, target.addrs, fresh.token)
            download(good, tail.extend, offset=len(data) - 1000, timeout=10)
            assert bytes(tail) == data[-1000:]

    asyncio.run(scenario())
