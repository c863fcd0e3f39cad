"""WAL round trips, overwrites, segments, snapshots and misuse."""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import pytest

from aspen.raft.core.types import (
    EMPTY_HARD_STATE,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from aspen.raft.wal import WAL, CorruptWalError, RecoveredState, WalError, WalWarning
from aspen.raft.wal import record as rec


def ents(first: int, last: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [
        Entry(term=term, index=i, data=f"{term}:{i}:".encode().ljust(size, b"x"))
        for i in range(first, last + 1)
    ]


def reopen(d: Path, **kw: int) -> RecoveredState:
    w, st = WAL.open(d, **kw)
    w.close()
    return st


def snap(index: int, term: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(
        meta=SnapshotMeta(index=index, term=term, conf_state=ConfState((1, 2, 3), (4,))), data=data
    )


def segment_files(d: Path) -> list[Path]:
    return sorted((d / "wal").glob("wal-*.log"))


def test_empty_directory(tmp_path: Path) -> None:
    w, st = WAL.open(tmp_path / "node")
    assert st == RecoveredState(EMPTY_HARD_STATE, None, (), 0)
    assert w.directory == tmp_path / "node"
    w.close()
    w.close()  # idempotent
    assert reopen(tmp_path / "node") == st


def test_round_trip(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    e = [*ents(1, 3), Entry(term=1, index=4, type=EntryType.CONF_CHANGE, data=b"cc"), Entry(2, 5)]
    w.save(HardState(term=1, vote=2, commit=0), e[:2])
    w.save(None, e[2:])
    w.save(HardState(term=2, vote=3, commit=4), [])
    w.close()
    st = reopen(tmp_path)
    assert st.entries == tuple(e)
    assert st.entries[3].type is EntryType.CONF_CHANGE
    assert st.hard_state == HardState(term=2, vote=3, commit=4)
    assert st.snapshot is None and st.torn_bytes_dropped == 0


def test_unsynced_data_is_synced_on_close(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(HardState(1, 1, 2), ents(1, 2), sync=False)
    w.sync()
    w.save(None, ents(3, 3), sync=False)
    w.close()
    assert [e.index for e in reopen(tmp_path).entries] == [1, 2, 3]


def test_overwrite_discards_later_entries(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(HardState(1, 1, 1), ents(1, 10, term=1))
    w.save(None, ents(6, 7, term=2))  # conflict truncation at 6
    w.save(HardState(2, 1, 5), ents(8, 8, term=2))
    w.close()
    st = reopen(tmp_path)
    assert st.entries == tuple(ents(1, 5, term=1) + ents(6, 8, term=2))
    # Continuing after recovery keeps the overwrite semantics.
    w, _ = WAL.open(tmp_path)
    w.save(HardState(3, 1, 1), ents(2, 2, term=3))
    w.close()
    assert reopen(tmp_path).entries == tuple(ents(1, 1) + ents(2, 2, term=3))


def test_overwrite_across_segments(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=300)
    for i in range(1, 41, 4):
        w.save(HardState(1, 1, 4), ents(i, i + 3))
    w.save(None, ents(5, 6, term=2))
    w.close()
    assert len(segment_files(tmp_path)) > 3
    st = reopen(tmp_path, segment_bytes=300)
    assert st.entries == tuple(ents(1, 4) + ents(5, 6, term=2))


def test_gap_is_refused_on_save(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 3))
    with pytest.raises(WalError, match="gap"):
        w.save(None, ents(5, 6))
    with pytest.raises(WalError, match="consecutive"):
        w.save(None, [Entry(1, 4), Entry(1, 6)])
    w.save(None, ents(4, 4))  # the WAL is still usable: nothing was written
    w.close()
    assert [e.index for e in reopen(tmp_path).entries] == [1, 2, 3, 4]


def test_gap_on_disk_is_corruption(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 3))
    w.close()
    with open(segment_files(tmp_path)[-1], "ab") as f:
        f.write(rec.encode_batch(ents(7, 8), None))
    with pytest.raises(CorruptWalError, match="gap"):
        WAL.open(tmp_path)


def test_first_entry_of_empty_log_may_have_any_index(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(5, 6))
    w.close()
    assert [e.index for e in reopen(tmp_path).entries] == [5, 6]


def test_segment_roll_and_names(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=1000)
    for i in range(1, 201, 10):
        w.save(HardState(1, 1, i + 9), ents(i, i + 9, size=20))
    w.close()
    files = segment_files(tmp_path)
    assert len(files) >= 5
    for k, p in enumerate(files):
        m = re.fullmatch(r"wal-([0-9a-f]{16})-([0-9a-f]{16})\.log", p.name)
        assert m is not None and int(m.group(1), 16) == k
    # Rolls happen only at batch boundaries: every non-tail segment is just over the limit.
    assert all(p.stat().st_size >= 1000 for p in files[:-1])
    st = reopen(tmp_path, segment_bytes=1000)
    assert st.entries == tuple(ents(1, 200, size=20))
    assert st.hard_state == HardState(1, 1, 200)
    # Reopened with a different segment size and appended to: still one log.
    w, _ = WAL.open(tmp_path, segment_bytes=10_000)
    w.save(None, ents(201, 230, size=20))
    w.close()
    assert reopen(tmp_path).entries == tuple(ents(1, 230, size=20))


def test_hard_state_survives_segment_deletion(tmp_path: Path) -> None:
    """The hard state is only written when it changes; a new segment repeats it in its header."""
    w, _ = WAL.open(tmp_path, segment_bytes=400)
    w.save(HardState(term=7, vote=3, commit=4), ents(1, 4, term=7))
    for i in range(5, 80, 5):
        w.save(None, ents(i, i + 4, term=7))
    w.save_snapshot(snap(20, 7))
    w.save_snapshot(snap(60, 7))
    w.close()
    st = reopen(tmp_path)
    assert st.hard_state == HardState(term=7, vote=3, commit=4)
    assert st.snapshot is not None and st.snapshot.meta.index == 60
    assert st.entries == tuple(ents(61, 79, term=7))


def test_missing_segment_is_corruption(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=200)
    for i in range(1, 40, 3):
        w.save(None, ents(i, i + 2))
    w.close()
    files = segment_files(tmp_path)
    assert len(files) >= 3
    files[1].unlink()
    with pytest.raises(CorruptWalError, match="missing"):
        WAL.open(tmp_path)


def test_snapshot_round_trip_and_compaction(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=500)
    for i in range(1, 101, 5):
        w.save(HardState(1, 1, i + 4), ents(i, i + 4))
    before = segment_files(tmp_path)
    w.save_snapshot(snap(50, 1, b"s50"))
    # One snapshot: nothing deleted yet (it is the fallback if the next snapshot is damaged).
    assert segment_files(tmp_path) == before
    for i in range(101, 151, 5):
        w.save(HardState(1, 1, i + 4), ents(i, i + 4))
    w.save_snapshot(snap(120, 1, b"s120"))
    after = segment_files(tmp_path)
    assert before[0] not in after and len(after) < len(before) + 3
    w.close()
    st = reopen(tmp_path, segment_bytes=500)
    assert st.snapshot == snap(120, 1, b"s120")
    assert st.entries == tuple(ents(121, 150))
    assert st.hard_state.commit == 150
    # Everything still needed by the older snapshot is kept.
    names = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert names == [
        "snap-0000000000000001-0000000000000032.snap",
        "snap-0000000000000001-0000000000000078.snap",
    ]
    w, _ = WAL.open(tmp_path)
    w.save_snapshot(snap(140, 1, b"s140"))
    w.close()
    names = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert names == [
        "snap-0000000000000001-0000000000000078.snap",
        "snap-0000000000000001-000000000000008c.snap",
    ]


def test_keep_one_snapshot_deletes_covered_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(WAL, "keep_snapshots", 1)
    w, _ = WAL.open(tmp_path, segment_bytes=300)
    for i in range(1, 61, 3):
        w.save(None, ents(i, i + 2))
    files = segment_files(tmp_path)
    w.save_snapshot(snap(40, 1))
    w.save(None, ents(61, 62))
    w.close()
    remaining = segment_files(tmp_path)
    assert files[0] not in remaining and files[-1] in remaining
    st = reopen(tmp_path)
    assert st.snapshot is not None and st.snapshot.meta.index == 40
    assert st.entries == tuple(ents(41, 62))
    assert len(list((tmp_path / "snap").iterdir())) == 1


def test_snapshot_beyond_log_replaces_it(tmp_path: Path) -> None:
    """A follower installing a snapshot past its log: the old entries are gone, the next is 101."""
    w, _ = WAL.open(tmp_path)
    w.save(HardState(1, 0, 5), ents(1, 10))
    w.save_snapshot(snap(100, 3))
    with pytest.raises(WalError):
        w.save(None, ents(50, 50))  # at or below the snapshot
    w.save(HardState(3, 0, 100), ents(101, 102, term=3))
    w.close()
    st = reopen(tmp_path)
    assert st.snapshot is not None and st.snapshot.meta.index == 100
    assert st.entries == tuple(ents(101, 102, term=3))


def test_conflicting_snapshot_drops_stale_entries(tmp_path: Path) -> None:
    """A snapshot whose term disagrees with our entry at its index replaces the whole log."""
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 30, term=1))
    w.save_snapshot(snap(20, 2))
    w.close()
    st = reopen(tmp_path)
    assert st.snapshot is not None and st.snapshot.meta.index == 20
    assert st.entries == ()
    # Whereas a snapshot that agrees with the log keeps the later entries.
    w, _ = WAL.open(tmp_path / "b")
    w.save(None, ents(1, 30, term=1))
    w.save_snapshot(snap(20, 1))
    w.close()
    assert reopen(tmp_path / "b").entries == tuple(ents(21, 30))


def test_snapshot_without_marker_is_used(tmp_path: Path) -> None:
    """Crash after the snapshot file was renamed into place but before its marker was written."""
    from aspen.raft.wal.snapfile import write_snapshot

    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 30))
    w.close()
    write_snapshot(tmp_path / "snap", snap(25, 1))
    st = reopen(tmp_path)
    assert st.snapshot is not None and st.snapshot.meta.index == 25
    assert st.entries == tuple(ents(26, 30))


def test_corrupt_snapshot_falls_back_to_older(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=300)
    for i in range(1, 91, 3):
        w.save(HardState(1, 1, i + 2), ents(i, i + 2))
        if i == 31:
            w.save_snapshot(snap(33, 1, b"old"))
        if i == 61:
            w.save_snapshot(snap(63, 1, b"new"))
    w.close()
    newest = tmp_path / "snap" / "snap-0000000000000001-000000000000003f.snap"
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 0x01  # one bit in the data
    newest.write_bytes(bytes(raw))
    with pytest.warns(WalWarning) as record:
        w, st = WAL.open(tmp_path)
    w.close()
    messages = " | ".join(str(r.message) for r in record)
    assert "damaged snapshot" in messages and "newest usable snapshot file is at 33" in messages
    assert st.snapshot == snap(33, 1, b"old")
    assert st.entries == tuple(ents(34, 90))
    assert (newest.parent / (newest.name + ".broken")).exists()


def test_all_snapshots_corrupt_and_log_compacted_is_corruption(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=200)
    for i in range(1, 61, 3):
        w.save(None, ents(i, i + 2))
    w.save_snapshot(snap(20, 1))
    w.save_snapshot(snap(50, 1))
    w.close()
    for p in (tmp_path / "snap").iterdir():
        p.write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WalWarning)
        with pytest.raises(CorruptWalError, match="lost"):
            WAL.open(tmp_path)


def test_stale_tmp_files_removed(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 2))
    w.close()
    stale = [
        tmp_path / "snap" / "snap-0000000000000001-0000000000000002.snap.tmp",
        tmp_path / "wal" / "x.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half a snapshot")
    st = reopen(tmp_path)
    assert not any(p.exists() for p in stale)
    assert st.snapshot is None and len(st.entries) == 2


def test_old_snapshot_refused(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 10))
    w.save_snapshot(snap(8, 1))
    with pytest.raises(WalError, match="older"):
        w.save_snapshot(snap(5, 1))
    with pytest.raises(WalError, match="empty"):
        w.save_snapshot(Snapshot())
    w.save_snapshot(snap(8, 1))  # the same one again is fine
    w.close()


def test_commit_beyond_log_is_clamped(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.save(HardState(term=1, vote=1, commit=9), ents(1, 3))
    w.close()
    with pytest.warns(WalWarning, match="clamped"):
        st = reopen(tmp_path)
    assert st.hard_state == HardState(term=1, vote=1, commit=3)


def test_second_open_is_refused(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    with pytest.raises(WalError, match="already open"):
        WAL.open(tmp_path)
    w.close()
    reopen(tmp_path)


def test_use_after_close_and_concurrent_use(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    assert w._busy.acquire()  # simulate another thread inside a call
    errors: list[BaseException] = []

    def other() -> None:
        try:
            w.save(None, ents(1, 1))
        except WalError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    w._busy.release()
    assert len(errors) == 1 and "concurrently" in str(errors[0])
    w.close()
    with pytest.raises(WalError, match="closed"):
        w.save(None, ents(1, 1))


def test_io_failure_poisons_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aspen.raft.wal.wal as walmod

    w, _ = WAL.open(tmp_path)
    w.save(None, ents(1, 1))

    def failing(fd: int) -> None:
        raise OSError(5, "EIO")

    monkeypatch.setattr(walmod, "_fdatasync", failing)
    with pytest.raises(WalError, match="failed"):
        w.save(None, ents(2, 2))
    monkeypatch.undo()
    with pytest.raises(WalError, match="failed earlier"):
        w.save(None, ents(3, 3))
    w.close()
    assert [e.index for e in reopen(tmp_path).entries] in ([1], [1, 2])
