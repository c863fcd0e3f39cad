"""Snapshots and state hashes: exact round trips, content-only hashing, corrupt input rejected."""

from __future__ import annotations

import msgpack
import pytest

from aspen.kv import (
    BatchWrite,
    Command,
    Delete,
    DeleteOp,
    KvEntry,
    KvStateMachine,
    LeaseCommand,
    LeaseGrant,
    Scan,
    SetOp,
    Write,
)
from aspen.kv.machine import SNAPSHOT_FORMAT

#: The rows-only layout from before leases; still restorable.
ROWS_ONLY = 1


def populated() -> KvStateMachine:
    kv = KvStateMachine()
    kv.apply(1, Write("a", b"1"))
    kv.apply(1, LeaseGrant(ttl_seconds=60, now_ms=1_000, lease_id=77))
    kv.apply(1, LeaseGrant(ttl_seconds=5, now_ms=1_000, lease_id=2**63 - 1))
    kv.apply(2, Write("a", b"2", lease_id=77))
    kv.apply(3, Write("é/ключ/😀", b"\x00\xff" * 10))
    kv.apply(4, Write("empty", b""))
    kv.apply(5, BatchWrite((SetOp("b", b"x"), SetOp("c", b"y"), DeleteOp("c"))))
    kv.apply(6, Write("gone", b"z"))
    kv.apply(7, Delete("gone"))
    kv.apply(8, Write("leased", b"l", lease_id=2**63 - 1))
    kv.advance(11)
    return kv


def test_round_trip_preserves_everything() -> None:
    kv = populated()
    restored = KvStateMachine.from_snapshot(kv.snapshot())
    assert list(restored.items()) == list(kv.items())
    assert restored.applied_index == kv.applied_index == 11
    assert len(restored) == len(kv) == 5
    assert restored.state_hash() == kv.state_hash()
    assert restored.get_entry("a") == KvEntry(b"2", 2, 1, 2, lease_id=77)
    assert restored.snapshot() == kv.snapshot()


def test_empty_round_trip() -> None:
    restored = KvStateMachine.from_snapshot(KvStateMachine().snapshot())
    assert len(restored) == 0 and restored.applied_index == 0
    assert restored.state_hash() == KvStateMachine().state_hash()


def test_restore_replaces_existing_state() -> None:
    kv = KvStateMachine()
    kv.apply(1, Write("old", b"o"))
    kv.restore(populated().snapshot())
    assert "old" not in kv
    assert kv.state_hash() == populated().state_hash()


def test_restored_machine_continues_identically() -> None:
    kv = populated()
    restored = KvStateMachine.from_snapshot(kv.snapshot())
    for machine in (kv, restored):
        machine.apply(12, Write("a", b"3"))
        machine.apply(13, Write("new", b"n"))
    assert restored.state_hash() == kv.state_hash()
    assert restored.get_entry("a") == KvEntry(b"3", 3, 1, 12)
    assert restored.scan(Scan("")) == kv.scan(Scan(""))


def test_state_hash_ignores_applied_index() -> None:
    a, b = KvStateMachine(), KvStateMachine()
    a.apply(1, Write("k", b"v"))
    b.apply(1, Write("k", b"v"))
    b.advance(50)
    assert a.state_hash() == b.state_hash()


def test_state_hash_sees_every_field() -> None:
    base = KvStateMachine()
    base.apply(1, Write("k", b"v"))
    variants = []
    scripts: tuple[list[tuple[int, Command | LeaseCommand]], ...] = (
        [(1, Write("k", b"w"))],  # value
        [(1, Write("j", b"v"))],  # key
        [(1, Write("k", b"v")), (1, Write("k", b"v"))],  # version
        [(2, Write("k", b"v"))],  # revisions
        [(1, LeaseGrant(60, 0, 1)), (1, Write("k", b"v", lease_id=1))],  # lease
        [(1, Write("k", b"v")), (1, Write("k2", b""))],  # extra key
    )
    for cmds in scripts:
        other = KvStateMachine()
        for index, cmd in cmds:
            other.apply(index, cmd)
        variants.append(other.state_hash())
    assert base.state_hash() not in variants
    assert len(set(variants)) == len(variants)


def test_equal_contents_reached_differently_hash_equal() -> None:
    a, b = KvStateMachine(), KvStateMachine()
    a.apply(1, BatchWrite((SetOp("x", b"1"), SetOp("y", b"2"))))
    b.apply(1, BatchWrite((SetOp("y", b"2"), SetOp("x", b"1"), SetOp("z", b"3"), DeleteOp("z"))))
    assert a.state_hash() == b.state_hash()


def test_snapshot_is_compact() -> None:
    kv = KvStateMachine()
    for start in range(0, 1000, 100):
        kv.apply(1, BatchWrite(tuple(SetOp(f"key/{i:06}", b"v" * 16) for i in range(start, start + 100))))
    # 10-byte key + 16-byte value + their headers + version, revision and delta: ~33 B per key.
    assert len(kv.snapshot()) < 1000 * 36


GOOD = populated().snapshot()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"not msgpack at all",
        GOOD[:-1],
        GOOD + b"\x00",
        msgpack.packb({"keys": []}),
        msgpack.packb([SNAPSHOT_FORMAT + 1, 0, [], [], [], [], [], [], [1]]),
        msgpack.packb([ROWS_ONLY, -1, [], [], [], [], [], []]),
        msgpack.packb([ROWS_ONLY, 0, ["a"], [], [], [], [], []]),
        msgpack.packb([ROWS_ONLY, 0, ["a"], ["not bytes"], [1], [1], [0], []]),
        msgpack.packb([ROWS_ONLY, 0, ["a"], [b"v"], [True], [1], [0], []]),
        msgpack.packb([ROWS_ONLY, 0, ["a", "a"], [b"v", b"w"], [1, 1], [1, 1], [0, 0], []]),
        msgpack.packb([ROWS_ONLY, 0, ["a"], [b"v"], [1], [1], [0], [5, 1]]),
        msgpack.packb([ROWS_ONLY, 0, ["a"], [b"v"], [1], [1], [0], [0]]),
        # Format 2: the lease table is a 9th column and must be consistent with the rows.
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], []]),  # table missing
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], [], []]),  # no id counter
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], [], [1, 5, 10]]),  # counter behind id
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], [], [9, 5, 0, 10]]),  # ttl 0
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], [], [9, 5, 1, 10, 5, 1, 10]]),  # dup
        msgpack.packb([SNAPSHOT_FORMAT, 0, [], [], [], [], [], [], [9, 5, 1, b"x"]]),  # type
        msgpack.packb([SNAPSHOT_FORMAT, 0, ["a"], [b"v"], [1], [1], [0], [0, 4], [9, 5, 1, 10]]),
    ],
)
def test_corrupt_snapshot_raises_value_error_and_keeps_state(data: bytes) -> None:
    kv = populated()
    before = (kv.state_hash(), kv.applied_index)
    with pytest.raises(ValueError):
        kv.restore(data)
    assert (kv.state_hash(), kv.applied_index) == before
