"""Crash recovery: torn tails are truncated, damage to acknowledged data is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from aspen.raft.core.types import EMPTY_HARD_STATE, Entry, HardState
from aspen.raft.wal import WAL, CorruptWalError, RecoveredState


def ents(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"d%d" % i) for i in range(first, last + 1)]


def reopen(d: Path) -> RecoveredState:
    w, st = WAL.open(d)
    w.close()
    return st


def tail_segment(d: Path) -> Path:
    return sorted((d / "wal").glob("wal-*.log"))[-1]


EARLIER = tuple(ents(1, 3))
EARLIER_HS = HardState(1, 1, 2)


def single_last_batch(d: Path) -> tuple[Path, bytes, int, int]:
    """Acknowledged batches, then ONE last batch (entries 4..6 + hard state).

    Returns (tail segment, its full bytes, offset where the last batch starts, offset of the last
    record of that batch)."""
    w, _ = WAL.open(d)
    w.save(HardState(1, 1, 0), ents(1, 2))
    w.save(HardState(1, 1, 2), ents(3, 3))
    seg = tail_segment(d)
    start = seg.stat().st_size
    w.save(HardState(2, 1, 3), ents(4, 6, term=2))
    w.close()
    raw = seg.read_bytes()
    # The hard-state record is the batch's last record: 9 bytes of header + 24 of payload.
    return seg, raw, start, len(raw) - 33


def check(st: RecoveredState, complete: bool) -> None:
    if complete:
        assert st.entries == EARLIER + tuple(ents(4, 6, term=2))
        assert st.hard_state == HardState(2, 1, 3)
    else:
        assert st.entries == EARLIER
        assert st.hard_state == EARLIER_HS


def test_every_truncation_point_of_the_last_batch(tmp_path: Path) -> None:
    seg, raw, start, _ = single_last_batch(tmp_path)
    for cut in range(start, len(raw) + 1):
        seg.write_bytes(raw[:cut])
        st = reopen(tmp_path)
        check(st, complete=cut == len(raw))
        assert st.torn_bytes_dropped == (0 if cut == len(raw) else cut - start)
        assert seg.stat().st_size == (len(raw) if cut == len(raw) else start)


def test_every_byte_flip_in_the_last_batch(tmp_path: Path) -> None:
    """Flipping any byte of the last batch (in particular of its last record) loses exactly that
    batch: it was never completely on disk as written."""
    seg, raw, start, last_rec = single_last_batch(tmp_path)
    assert last_rec > start
    for off in range(start, len(raw)):
        for mask in (0x01, 0xFF):
            damaged = bytearray(raw)
            damaged[off] ^= mask
            seg.write_bytes(bytes(damaged))
            st = reopen(tmp_path)
            check(st, complete=False)
            assert st.torn_bytes_dropped == len(raw) - start


def test_recovered_wal_keeps_working_after_truncation(tmp_path: Path) -> None:
    seg, raw, start, _ = single_last_batch(tmp_path)
    seg.write_bytes(raw[: start + 5])
    w, st = WAL.open(tmp_path)
    assert st.torn_bytes_dropped == 5 and st.entries == EARLIER
    w.save(HardState(3, 2, 4), ents(4, 5, term=3))
    w.close()
    st = reopen(tmp_path)
    assert st.entries == EARLIER + tuple(ents(4, 5, term=3))
    assert st.hard_state == HardState(3, 2, 4) and st.torn_bytes_dropped == 0


@pytest.mark.parametrize("zeros", [1, 9, 100, 4096])
def test_zero_filled_tail_is_torn(tmp_path: Path, zeros: int) -> None:
    seg, raw, _, _ = single_last_batch(tmp_path)
    seg.write_bytes(raw + bytes(zeros))
    st = reopen(tmp_path)
    check(st, complete=True)
    assert st.torn_bytes_dropped == zeros


def test_garbage_tail_is_torn(tmp_path: Path) -> None:
    seg, raw, _, _ = single_last_batch(tmp_path)
    seg.write_bytes(raw + b"\x07" * 5 + b"\x82\xff\x00")
    st = reopen(tmp_path)
    check(st, complete=True)
    assert st.torn_bytes_dropped == 8


def test_damage_followed_by_a_later_batch_is_corruption(tmp_path: Path) -> None:
    """Any byte of an acknowledged, non-last batch: refused, never silently dropped."""
    seg, raw, start, _ = single_last_batch(tmp_path)
    header_end = 9 + 24  # the segment header record
    for off in range(header_end, start):
        damaged = bytearray(raw)
        damaged[off] ^= 0x20
        seg.write_bytes(bytes(damaged))
        with pytest.raises(CorruptWalError):
            WAL.open(tmp_path)
    seg.write_bytes(raw)
    check(reopen(tmp_path), complete=True)


def test_damaged_segment_header_is_corruption(tmp_path: Path) -> None:
    seg, raw, _, _ = single_last_batch(tmp_path)
    damaged = bytearray(raw)
    damaged[12] ^= 0x01  # inside the magic
    seg.write_bytes(bytes(damaged))
    with pytest.raises(CorruptWalError):
        WAL.open(tmp_path)


def test_corruption_in_non_tail_segment(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path, segment_bytes=200)
    for i in range(1, 60, 3):
        w.save(HardState(1, 1, i + 2), ents(i, i + 2))
    w.close()
    files = sorted((tmp_path / "wal").glob("wal-*.log"))
    assert len(files) >= 3
    first = files[0]
    raw = first.read_bytes()
    # A flipped byte in the middle, and (separately) a truncated non-tail segment.
    for damaged in (raw[:-1] + bytes([raw[-1] ^ 1]), raw[:-3], raw[:100] + bytes([raw[100] ^ 4]) + raw[101:]):
        first.write_bytes(damaged)
        with pytest.raises(CorruptWalError, match="non-tail"):
            WAL.open(tmp_path)
    first.write_bytes(raw)
    assert len(reopen(tmp_path).entries) == 60


def test_torn_new_segment_header(tmp_path: Path) -> None:
    """Crash while creating a segment: the half-written file is dropped, the previous one used."""
    w, _ = WAL.open(tmp_path, segment_bytes=200)
    for i in range(1, 31, 3):
        w.save(HardState(1, 1, i + 2), ents(i, i + 2))
    w.close()
    files = sorted((tmp_path / "wal").glob("wal-*.log"))
    tail = files[-1]
    good_entries = reopen(tmp_path).entries
    # Pretend the tail segment's only content is a half-written header batch.
    new_tail = tail.with_name(tail.name.replace(tail.name[4:20], f"{int(tail.name[4:20], 16) + 1:016x}"))
    new_tail.write_bytes(tail.read_bytes()[:20])
    w, st = WAL.open(tmp_path, segment_bytes=200)
    assert st.torn_bytes_dropped == 20 and st.entries == good_entries
    assert not new_tail.exists()
    w.save(None, ents(31, 40))
    w.close()
    assert reopen(tmp_path).entries == good_entries + tuple(ents(31, 40))


def test_only_segment_torn_header(tmp_path: Path) -> None:
    w, _ = WAL.open(tmp_path)
    w.close()
    seg = tail_segment(tmp_path)
    seg.write_bytes(seg.read_bytes()[:7])
    w, st = WAL.open(tmp_path)
    assert st.torn_bytes_dropped == 7 and st.entries == () and st.hard_state == EMPTY_HARD_STATE
    w.save(HardState(1, 1, 1), ents(1, 1))
    w.close()
    assert reopen(tmp_path).entries == tuple(ents(1, 1))


def test_many_entries_recover_quickly(tmp_path: Path) -> None:
    import time

    w, _ = WAL.open(tmp_path)
    data = b"v" * 120
    for k in range(0, 50_000, 1000):
        w.save(HardState(1, 1, k), [Entry(1, i, data=data) for i in range(k + 1, k + 1001)], sync=False)
    w.close()
    t0 = time.perf_counter()
    st = reopen(tmp_path)
    elapsed = time.perf_counter() - t0
    assert len(st.entries) == 50_000 and st.entries[-1].index == 50_000
    assert elapsed < 10  # generous: ~0.2-0.4 s on a laptop
