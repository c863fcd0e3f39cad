"""Issue 19, item 7: the WAL and its snapshots are private (directories 0700, files 0600) whatever
the process's umask -- they hold every value in the clear."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from harness import loose_entries

from aspen.raft.core.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from aspen.raft.wal import WAL
from aspen.raft.wal.snapfile import snapshot_name, write_snapshot


def modes(root: Path) -> dict[str, int]:
    """Permission bits of `root` and of everything below it, by path relative to `root`."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def snap(index: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index=index, term=1, conf_state=ConfState((1,), ())), b"state" * 100)


@pytest.mark.usefixtures("loose_umask")
def test_wal_segments_lock_and_snapshots_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wal, _ = WAL.open(data, segment_bytes=4096)
    try:
        # Enough entries for several segments, then a snapshot and more entries after it.
        for i in range(1, 200):
            wal.save(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i, data=b"x" * 100)])
        wal.save_snapshot(snap(150))
        wal.save(None, [Entry(term=1, index=200, data=b"y")])
    finally:
        wal.close()
    found = modes(data)
    assert sum(1 for name in found if name.startswith("wal/wal-")) > 2, found
    assert "wal/LOCK" in found
    assert any(name.endswith(".snap") for name in found), found
    assert loose_entries(data) == []


@pytest.mark.usefixtures("loose_umask")
def test_a_leftover_snapshot_temp_file_does_not_keep_its_loose_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    final = tmp_path / snapshot_name(7, 1)
    leftover = final.with_name(final.name + ".tmp")
    leftover.write_bytes(b"half a snapshot")  # a crash mid-write, by a version without modes
    leftover.chmod(0o644)
    written = write_snapshot(tmp_path, snap(7))
    assert stat.S_IMODE(written.path.stat().st_mode) == 0o600
    assert loose_entries(tmp_path) == []
