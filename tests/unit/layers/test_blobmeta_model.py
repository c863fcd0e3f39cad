"""The blob metadata layer: each holder change is one command applied atomically to the replica
record, in the record format older nodes wrote by compare-and-swap."""

from __future__ import annotations

import json

from aspen.kv import KvStateMachine, LayerCommand, Read, Write
from aspen.layers import APPLIERS, blobmeta
from aspen.layers.blobmeta import BlobHolderAdd, BlobHolderRemove, ReplicaRecord, ReplicationPolicy, meta_key

H = "ab" * 32
NOW = 1_700_000_000_000


def _machine() -> KvStateMachine:
    return KvStateMachine(layers=APPLIERS)


def _apply(machine: KvStateMachine, op: object, now_ms: int = NOW) -> blobmeta.BlobMetaResult:
    res = machine.apply(machine.applied_index + 1, blobmeta.LAYER.command(op, now_ms))  # type: ignore[arg-type]
    assert isinstance(res, blobmeta.BlobMetaResult), res
    return res


def _stored(machine: KvStateMachine) -> bytes | None:
    return machine.read(Read(meta_key(H))).value


def test_the_first_holder_creates_the_record_in_the_old_format() -> None:
    machine = _machine()
    res = _apply(machine, BlobHolderAdd(H, 1000, 2, 3))
    assert res.is_success and res.changed and res.nodes == (2,)
    expected = ReplicaRecord(H, 1000, (2,), ReplicationPolicy.for_factor(3), NOW * 1000).encode()
    assert _stored(machine) == expected
    assert json.loads(expected) == {
        "hash": H,
        "size": 1000,
        "nodes": [2],
        "policy": {
            "replication_factor": 3,
            "min_replicas": 2,
            "failure_domain_key": None,
            "enable_quorum_writes": False,
        },
        "updated_at_micros": NOW * 1000,
    }


def test_concurrent_holders_are_all_kept_without_retries() -> None:
    """Two nodes recording themselves at once: what a compare-and-swap would have made one retry."""
    machine = _machine()
    for node in (1, 3, 2):
        assert _apply(machine, BlobHolderAdd(H, 1000, node, 3)).changed
    record = ReplicaRecord.decode(_stored(machine) or b"")
    assert record.nodes == (1, 2, 3) and record.size == 1000


def test_a_repeated_add_writes_nothing() -> None:
    machine = _machine()
    _apply(machine, BlobHolderAdd(H, 1000, 1, 3))
    before = _stored(machine)
    res = _apply(machine, BlobHolderAdd(H, 1000, 1, 3), NOW + 5)
    assert res.is_success and not res.changed and _stored(machine) == before


def test_the_last_holder_leaving_deletes_the_record() -> None:
    machine = _machine()
    _apply(machine, BlobHolderAdd(H, 1000, 1, 3))
    _apply(machine, BlobHolderAdd(H, 1000, 2, 3))
    assert _apply(machine, BlobHolderRemove(H, 1)).nodes == (2,)
    assert not _apply(machine, BlobHolderRemove(H, 1)).changed  # already gone: no write
    assert _apply(machine, BlobHolderRemove(H, 2)).changed
    assert _stored(machine) is None


def test_a_record_written_by_an_old_node_keeps_its_fields() -> None:
    """Old logs hold plain KV writes of the record (compare-and-swap): they replay, and layer ops
    continue from them."""
    machine = _machine()
    old = ReplicaRecord(H, 7, (4,), ReplicationPolicy(5, 3, "rack", True), 123).encode()
    machine.apply(1, Write(meta_key(H), old))
    _apply(machine, BlobHolderAdd(H, 999, 1, 1))
    record = ReplicaRecord.decode(_stored(machine) or b"")
    assert record.nodes == (1, 4) and record.size == 7
    assert record.policy == ReplicationPolicy(5, 3, "rack", True)


def test_an_unreadable_value_is_replaced_by_an_add_and_left_by_a_remove() -> None:
    machine = _machine()
    machine.apply(1, Write(meta_key(H), b"[[[not a record"))
    assert not _apply(machine, BlobHolderRemove(H, 1)).changed
    assert _stored(machine) == b"[[[not a record"
    assert _apply(machine, BlobHolderAdd(H, 10, 1, 2)).nodes == (1,)
    assert ReplicaRecord.decode(_stored(machine) or b"").policy == ReplicationPolicy.for_factor(2)


def test_bad_operations_are_rejected_and_write_nothing() -> None:
    machine = _machine()
    for op in (
        BlobHolderAdd(H, -1, 1, 3),
        BlobHolderAdd(H, 1, 0, 3),
        BlobHolderAdd(H, 1, 1, 0),
        BlobHolderAdd("", 1, 1, 3),
        BlobHolderRemove(H, 2**64),
    ):
        res = _apply(machine, op)
        assert not res.is_success and res.error
    bad = LayerCommand("blobmeta", "BlobHolderAdd", NOW, (H, True, 1, 3))
    res = machine.apply(machine.applied_index + 1, bad)
    assert not res.is_success and "malformed" in res.error
    assert len(machine) == 0
