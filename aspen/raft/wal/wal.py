"""The write-ahead log: durable Raft entries, hard state and snapshots for one node.

Layout under ``directory``::

    wal/wal-<16-hex seq>-<16-hex first index>.log   segments, replayed in seq order
    wal/LOCK                                        flock'ed while a WAL is open
    snap/snap-<16-hex term>-<16-hex index>.snap      snapshot files (see snapfile.py)

Invariants:

* A record is acknowledged only after the fsync (fdatasync) that covers it returns: ``save`` and
  ``save_snapshot`` return only then, and the driver sends nothing that depends on a record before.
* Each ``save`` is one batch, written by one ``os.write`` and applied atomically on recovery: the
  batch's records are used only if its last (BATCH_END) record is intact (see record.py).
* Within a batch, entries come before the hard state, so a recovered commit index never points
  past the recovered log (recovery still clamps, and warns, if it ever did).
* Only the tail segment is ever written; a segment is rolled only at a batch boundary, after its
  data is fsynced; a new segment's file and the directory are fsynced before it receives a batch.
  Hence damage anywhere but the end of the tail segment is corruption of acknowledged data, and
  opening refuses with CorruptWalError; damage confined to the last batch of the tail segment is a
  torn write, which is truncated away (and reported in ``torn_bytes_dropped``).
* Every segment starts with [SEGMENT_HEADER, current HARD_STATE, newest SNAPSHOT_MARKER], so
  deleting old segments never loses the latest hard state or snapshot marker.
* An ENTRY at index i replaces every earlier-recovered entry with index >= i (Raft's conflict
  truncation); entries stay contiguous, and an entry that would leave a gap is corruption.
* A snapshot file is complete before its marker is appended, and segments are deleted only after
  the marker is durable; only a prefix of whole non-tail segments is deleted, and only segments whose
  entries are all covered by the *oldest retained* snapshot (``WAL.keep_snapshots``, default 2), so
  that falling back to the older snapshot when the newest is damaged still finds a gap-free log.
* One WAL object is used by one thread at a time (the driver calls it via ``asyncio.to_thread``);
  concurrent calls are detected and refused rather than interleaved.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import itertools
import os
import re
import struct
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aspen.raft.core.types import EMPTY_HARD_STATE, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from aspen.raft.wal import record as rec
from aspen.raft.wal.errors import CorruptWalError, WalError, WalWarning
from aspen.raft.wal.snapfile import (
    SnapFile,
    SnapshotFileError,
    fsync_dir,
    list_snapshots,
    read_snapshot,
    snapshot_name,
    write_snapshot,
)

_SEGMENT_NAME = re.compile(r"^wal-([0-9a-f]{16})-([0-9a-f]{16})\.log$")
# fdatasync skips flushing metadata we do not need (mtime); it still flushes the file size.
_fdatasync = getattr(os, "fdatasync", os.fsync)
_ENTRY_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}


@dataclass(frozen=True, slots=True)
class RecoveredState:
    hard_state: HardState
    """Last hard state written (EMPTY_HARD_STATE if none)."""
    snapshot: Snapshot | None
    """Newest intact snapshot file (meta + data), or None."""
    entries: tuple[Entry, ...]
    """Entries after snapshot.meta.index, in index order, with overwrites resolved."""
    torn_bytes_dropped: int
    """How many tail bytes were truncated on open (0 normally)."""


@dataclass(slots=True)
class _Segment:
    seq: int
    first_index: int
    path: Path
    #: Highest entry index ever written to this segment (0: none); bounds what deleting it loses.
    max_index: int = 0


def _segment_name(seq: int, first_index: int) -> str:
    return f"wal-{seq:016x}-{first_index:016x}.log"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Replay:
    """Rebuilds the log from segment records, applying whole batches only."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        #: When `entries` is empty: the index the log is known to end at (after a snapshot marker
        #: replaced it), so the next entry must be <= floor + 1. None: nothing known yet (replay
        #: may start after deleted segments, where the first entry can have any index).
        self.floor: int | None = None
        self.hard_state: HardState = EMPTY_HARD_STATE
        self.marker: rec.Marker | None = None

    def segment(self, buf: bytes, seg: _Segment, is_last: bool) -> int:
        """Replay one segment; returns the offset up to which it is intact (len(buf) unless the
        tail segment ends in a torn batch). Raises CorruptWalError for anything else."""
        unpack_hdr = rec.REC_HEADER.unpack_from
        unpack_entry = rec.ENTRY_FIELDS.unpack_from
        value = rec.crc_value
        extend = rec.crc_extend
        entry_types = _ENTRY_TYPES
        ENTRY = rec.ENTRY
        KIND_MASK = rec.KIND_MASK
        BATCH_BEGIN = rec.BATCH_BEGIN
        BATCH_END = rec.BATCH_END
        HDR = rec.REC_HEADER_SIZE
        FIXED_END = 8 + rec.ENTRY_FIXED.size  # offset of the data from the record start
        ENTRY_MIN = rec.ENTRY_PAYLOAD_MIN

        n = len(buf)
        pos = 0
        batch_start = 0
        pending: list[Any] = []
        bad: str | None = None
        while pos < n:
            if n - pos < HDR:
                bad = "truncated record header"
                break
            length, crc = unpack_hdr(buf, pos)
            end = pos + HDR + length
            if end > n:
                bad = f"record length {length} runs past the end of the file"
                break
            rtype = buf[pos + 8]
            kind = rtype & KIND_MASK
            if kind == ENTRY and length >= ENTRY_MIN:
                data = buf[pos + FIXED_END : end]
                if extend(value(buf[pos + 8 : pos + FIXED_END]), data) != crc:
                    bad = "checksum mismatch"
                    break
                term, index, et = unpack_entry(buf, pos + HDR)
                etype = entry_types.get(et)
                if etype is None:
                    raise CorruptWalError(f"{seg.path}: offset {pos}: unknown entry type {et}")
                pending.append(Entry(term, index, etype, data))
            else:
                body = buf[pos + 8 : end]
                if value(body) != crc:
                    bad = "checksum mismatch" if rec.payload_size_ok(kind, length) else "bad record type"
                    break
                pending.append(self._decode(kind, body, seg, pos))
            # Structural checks on a CRC-valid record: these cannot come from a torn write.
            if pos == 0 and kind != rec.SEGMENT_HEADER:
                raise CorruptWalError(f"{seg.path}: does not start with a segment header")
            if bool(rtype & BATCH_BEGIN) != (pos == batch_start):
                raise CorruptWalError(f"{seg.path}: offset {pos}: batch framing broken")
            pos = end
            if rtype & BATCH_END:
                self._apply(pending, seg)
                pending = []
                batch_start = pos
        if bad is None and not pending:
            return n
        where = f"{seg.path}: offset {pos}"
        if not is_last:
            raise CorruptWalError(
                f"{where}: {bad or 'segment ends inside a batch'} in a non-tail segment "
                "(acknowledged records would be lost)"
            )
        if bad is not None:
            later = rec.find_batch_begin_after(buf, pos + 1)
            if later is not None:
                raise CorruptWalError(
                    f"{where}: {bad}, but a later batch starts at offset {later}; the damaged "
                    "records were acknowledged, refusing to drop them"
                )
        # Torn write: everything from the start of the unfinished batch is dropped.
        return batch_start

    def _decode(self, kind: int, body: bytes, seg: _Segment, pos: int) -> object:
        if not rec.payload_size_ok(kind, len(body) - 1):
            raise CorruptWalError(f"{seg.path}: offset {pos}: record kind {kind} with bad length")
        if kind == rec.HARD_STATE:
            _, term, vote, commit = rec.HARD_STATE_BODY.unpack(body)
            return HardState(term=term, vote=vote, commit=commit)
        if kind == rec.SNAPSHOT_MARKER:
            _, index, term = rec.MARKER_BODY.unpack(body)
            return rec.Marker(index=index, term=term)
        # SEGMENT_HEADER (payload_size_ok rejected unknown kinds).
        _, magic, seq, first_index = rec.SEGMENT_HEADER_BODY.unpack(body)
        if pos != 0 or magic != rec.SEGMENT_MAGIC or seq != seg.seq:
            raise CorruptWalError(
                f"{seg.path}: offset {pos}: bad segment header (magic {magic!r}, seq {seq})"
            )
        return rec.SegmentHeader(seq=seq, first_index=first_index)

    def _apply(self, batch: list[Any], seg: _Segment) -> None:
        n = len(batch)
        k = 0
        while k < n:
            o = batch[k]
            if type(o) is Entry:
                # A run of entries is placed with one overwrite/gap decision and one extend,
                # instead of per-entry bookkeeping: this is most of the recovery work.
                j = k + 1
                while j < n and type(batch[j]) is Entry:
                    j += 1
                run = batch[k:j] if (k or j != n) else batch
                expect = o.index
                for e in run:
                    if e.index != expect:
                        raise CorruptWalError(f"{seg.path}: batch has entry {e.index} where {expect} belongs")
                    expect += 1
                self._place(run, seg)
                if expect - 1 > seg.max_index:
                    seg.max_index = expect - 1
                k = j
                continue
            if type(o) is HardState:
                self.hard_state = o
            elif type(o) is rec.Marker:
                self._apply_marker(o)
            k += 1

    def _place(self, run: list[Entry], seg: _Segment) -> None:
        """Append consecutive entries; the first one discards every entry at or above its index."""
        entries = self.entries
        i = run[0].index
        if entries:
            last = entries[-1].index
            if i != last + 1:
                if i > last + 1:
                    raise CorruptWalError(f"{seg.path}: entry {i} after entry {last} leaves a gap")
                first = entries[0].index
                if i >= first:
                    del entries[i - first :]
                else:
                    entries.clear()
        elif self.floor is not None and i > self.floor + 1:
            raise CorruptWalError(f"{seg.path}: entry {i} after a snapshot at {self.floor} leaves a gap")
        entries.extend(run)

    def _apply_marker(self, m: rec.Marker) -> None:
        if self.marker is None or (m.index, m.term) >= (self.marker.index, self.marker.term):
            self.marker = m
        entries = self.entries
        if not entries:
            if self.floor is not None:
                self.floor = max(self.floor, m.index)
            return
        first, last = entries[0].index, entries[-1].index
        if m.index > last or (first <= m.index and entries[m.index - first].term != m.term):
            # The snapshot replaced a log that did not contain it: nothing before it survives.
            entries.clear()
            self.floor = m.index
        # Otherwise the log agrees with the snapshot (or was already compacted past it); keep it.


class WAL:
    """See the module docstring for the on-disk invariants."""

    #: Snapshot files kept; segments are deleted only up to the oldest kept snapshot's index.
    #: 1 deletes everything the newest snapshot covers (no fallback if it is damaged).
    keep_snapshots: int = 2

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        # Use WAL.open().
        self._dir = directory
        self._wal_dir = directory / "wal"
        self._snap_dir = directory / "snap"
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd = -1
        self._lock_fd = -1
        self._size = 0
        self._header_size = 0
        self._unsynced = False
        self._last_index = 0
        self._snap_index = 0
        self._hard_state = EMPTY_HARD_STATE
        self._marker: rec.Marker | None = None
        self._snapshots: list[SnapFile] = []
        self._busy = threading.Lock()
        self._failed: BaseException | None = None
        self._closed = False

    @property
    def directory(self) -> Path:
        return self._dir

    # ------------------------------------------------------------------ open / recovery

    @classmethod
    def open(cls, directory: Path, *, segment_bytes: int = 64 * 1024 * 1024) -> tuple[WAL, RecoveredState]:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        directory = Path(directory)
        wal = cls(directory, segment_bytes)
        for d in (directory, wal._wal_dir, wal._snap_dir):
            if not d.is_dir():
                # 0700 and (below) 0600 whatever the umask: the log holds every value in the clear.
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                fsync_dir(d.parent)
        wal._lock()
        try:
            state = wal._recover()
        except BaseException:
            wal._release_lock()
            raise
        return wal, state

    def _lock(self) -> None:
        fd = os.open(self._wal_dir / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise WalError(f"{self._dir}: WAL is already open elsewhere") from exc
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = -1

    def _recover(self) -> RecoveredState:
        self._remove_temp_files()
        snapshot = self._load_snapshot()
        segments = self._list_segments()
        replay = _Replay()
        torn = 0
        # Replay allocates millions of acyclic objects into an ever-growing list; the cyclic GC
        # would repeatedly traverse all of them for nothing, which on a large log dominates recovery.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for k, seg in enumerate(segments):
                buf = seg.path.read_bytes()
                size = len(buf)
                good = replay.segment(buf, seg, is_last=k == len(segments) - 1)
                del buf  # a whole segment; do not hold it while reading the next
                if good < size:
                    torn += size - good
                    self._truncate(seg, good)
        finally:
            if gc_was_enabled:
                gc.enable()
        next_seq = segments[-1].seq + 1 if segments else 0
        if segments and segments[-1].path.stat().st_size == 0:
            # The tail's very first batch (its header) was torn: the segment never existed. The
            # previous segment (if any) becomes the tail again; otherwise a new one reuses the seq.
            dead = segments.pop()
            dead.path.unlink()
            fsync_dir(self._wal_dir)
            next_seq = dead.seq

        entries = self._resolve(replay, snapshot)
        snap_index = snapshot.meta.index if snapshot is not None else 0
        last = entries[-1].index if entries else snap_index
        hs = replay.hard_state
        if hs.commit > last:
            warnings.warn(
                f"{self._dir}: hard state commit {hs.commit} exceeds the last recovered index {last}; "
                "clamped",
                WalWarning,
                stacklevel=3,
            )
            hs = HardState(term=hs.term, vote=hs.vote, commit=last)

        self._segments = segments
        self._hard_state = replay.hard_state
        self._marker = replay.marker
        if snapshot is not None and (self._marker is None or snapshot.meta.index > self._marker.index):
            self._marker = rec.Marker(snapshot.meta.index, snapshot.meta.term)
        self._snap_index = snap_index
        self._last_index = last
        if segments:
            tail = segments[-1]
            self._fd = os.open(tail.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._size = os.fstat(self._fd).st_size
            self._header_size = 0  # a recovered tail may be rolled as soon as it is full
        else:
            self._create_segment(next_seq)
        return RecoveredState(
            hard_state=hs, snapshot=snapshot, entries=tuple(entries), torn_bytes_dropped=torn
        )

    def _remove_temp_files(self) -> None:
        for d in (self._wal_dir, self._snap_dir):
            removed = False
            for p in d.iterdir():
                if p.name.endswith(".tmp"):
                    p.unlink()
                    removed = True
            if removed:
                fsync_dir(d)

    def _load_snapshot(self) -> Snapshot | None:
        """The newest intact snapshot; damaged newer ones are renamed *.broken (kept for forensics,
        never used) with a WalWarning."""
        files = list_snapshots(self._snap_dir)
        for k, sf in enumerate(files):
            try:
                snap = read_snapshot(sf)
            except SnapshotFileError as exc:
                warnings.warn(
                    f"{sf.path}: ignoring damaged snapshot ({exc}); falling back to an older one",
                    WalWarning,
                    stacklevel=4,
                )
                with contextlib.suppress(OSError):
                    sf.path.rename(sf.path.with_name(sf.path.name + ".broken"))
                    fsync_dir(self._snap_dir)
                continue
            self._snapshots = files[k:]
            return snap
        self._snapshots = []
        return None

    def _list_segments(self) -> list[_Segment]:
        segs = []
        for p in self._wal_dir.iterdir():
            m = _SEGMENT_NAME.match(p.name)
            if m is not None:
                segs.append(_Segment(seq=int(m.group(1), 16), first_index=int(m.group(2), 16), path=p))
        segs.sort(key=lambda s: s.seq)
        for a, b in itertools.pairwise(segs):
            if b.seq != a.seq + 1:
                raise CorruptWalError(f"{self._wal_dir}: segment {a.seq + 1} is missing (next is {b.seq})")
        return segs

    def _truncate(self, seg: _Segment, size: int) -> None:
        fd = os.open(seg.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _resolve(self, replay: _Replay, snapshot: Snapshot | None) -> list[Entry]:
        """Entries after the chosen snapshot, checked to continue it without a gap."""
        entries = replay.entries
        marker = replay.marker
        snap_index = snapshot.meta.index if snapshot is not None else 0
        if marker is not None and marker.index > snap_index:
            warnings.warn(
                f"{self._dir}: the WAL records a snapshot at index {marker.index} but the newest "
                f"usable snapshot file is at {snap_index}; recovering from that",
                WalWarning,
                stacklevel=4,
            )
        if snapshot is None:
            if marker is not None and (not entries or entries[0].index != 1):
                raise CorruptWalError(
                    f"{self._dir}: no usable snapshot file, and the log no longer starts at index 1 "
                    f"(the snapshot at {marker.index} is lost)"
                )
            return entries
        s, t = snapshot.meta.index, snapshot.meta.term
        if not entries:
            return entries
        first, last = entries[0].index, entries[-1].index
        if last < s:
            return []
        if first <= s:
            if entries[s - first].term != t:
                # The log conflicts with the snapshot (it replaced the log but its marker never
                # made it to disk): the entries after it are not this snapshot's continuation.
                return []
            return entries[s - first + 1 :]
        if first > s + 1:
            raise CorruptWalError(
                f"{self._dir}: snapshot ends at index {s} but the log starts at {first}; "
                f"entries {s + 1}..{first - 1} are lost"
            )
        return entries

    # ------------------------------------------------------------------ writing

    def _create_segment(self, seq: int) -> None:
        first_index = self._last_index + 1
        path = self._wal_dir / _segment_name(seq, first_index)
        batch = [rec.encode_segment_header(seq, first_index, first=True, last=False)]
        if self._hard_state != EMPTY_HARD_STATE:
            batch.append(rec.encode_hard_state(self._hard_state, first=False, last=False))
        if self._marker is not None:
            batch.append(rec.encode_marker(self._marker.index, self._marker.term, first=False, last=False))
        # Re-encode the last record with BATCH_END (the flag is CRC-covered).
        if len(batch) == 1:
            batch[0] = rec.encode_segment_header(seq, first_index, first=True, last=True)
        elif self._marker is not None:
            batch[-1] = rec.encode_marker(self._marker.index, self._marker.term, first=False, last=True)
        else:
            batch[-1] = rec.encode_hard_state(self._hard_state, first=False, last=True)
        data = b"".join(batch)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)  # a new file: flush its size/metadata too, not just the data
            fsync_dir(self._wal_dir)
        except BaseException:
            os.close(fd)
            raise
        self._segments.append(_Segment(seq=seq, first_index=first_index, path=path))
        self._fd = fd
        self._size = len(data)
        self._header_size = len(data)
        self._unsynced = False

    def _roll_if_full(self) -> None:
        if self._size < self._segment_bytes or self._size <= self._header_size:
            return
        if self._unsynced:
            # Earlier unsynced batches must be durable before a later segment can exist, or
            # recovery could see a hole followed by valid data.
            _fdatasync(self._fd)
            self._unsynced = False
        os.close(self._fd)
        self._fd = -1
        self._create_segment(self._segments[-1].seq + 1)

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise WalError("WAL used concurrently from two threads")
        if self._closed:
            self._busy.release()
            raise WalError("WAL is closed")
        if self._failed is not None:
            self._busy.release()
            raise WalError("WAL failed earlier; reopen it to recover") from self._failed

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True) -> None:
        """Append entries then the hard state (if given) as one batch, then ONE fdatasync for it.

        With sync=False nothing is acknowledged until a later synced save (or close); recovery may
        then report corruption if the kernel wrote later batches but not earlier ones.
        """
        self._enter()
        try:
            if entries:
                self._check_entries(entries)
            if not entries and hard_state is None:
                if sync and self._unsynced:
                    self._sync()
                return
            try:
                data = rec.encode_batch(entries, hard_state)
            except (struct.error, OverflowError, ValueError) as exc:
                # Checked before anything is written: a bad entry never reaches the disk.
                raise WalError(f"cannot encode batch: {exc}") from exc
            self._append(data, sync)
            if entries:
                last = entries[-1].index
                self._last_index = last
                tail = self._segments[-1]
                if last > tail.max_index:
                    tail.max_index = last
            if hard_state is not None:
                self._hard_state = hard_state
        finally:
            self._busy.release()

    def _check_entries(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        if first <= self._snap_index:
            raise WalError(f"entry {first} is at or below the snapshot index {self._snap_index}")
        if first < 1 or (self._last_index and first > self._last_index + 1):
            raise WalError(f"entry {first} would leave a gap after {self._last_index}")
        expect = first
        for e in entries:
            if e.index != expect:
                raise WalError(f"entries are not consecutive: {e.index} where {expect} was expected")
            expect += 1

    def _append(self, data: bytes, sync: bool) -> None:
        try:
            self._roll_if_full()
            _write_all(self._fd, data)
            self._size += len(data)
            self._unsynced = True
            if sync:
                _fdatasync(self._fd)
                self._unsynced = False
        except OSError as exc:
            # After a failed write/fsync the page cache no longer tells us what is durable.
            self._failed = exc
            raise WalError(f"{self._dir}: WAL write failed: {exc}") from exc

    def _sync(self) -> None:
        try:
            _fdatasync(self._fd)
            self._unsynced = False
        except OSError as exc:
            self._failed = exc
            raise WalError(f"{self._dir}: WAL fsync failed: {exc}") from exc

    @property
    def snap_dir(self) -> Path:
        """Where snapshot files live; `write_snapshot(wal.snap_dir, snap)` may run in another process."""
        return self._snap_dir

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Snapshot file (temp -> fsync -> rename -> fsync dir), then a durable marker record, then
        delete segments and snapshot files no longer needed."""
        self._enter()
        try:
            self._check_snapshot_index(snapshot.meta)
            try:
                sf = write_snapshot(self._snap_dir, snapshot)
            except OSError as exc:
                raise WalError(f"{self._snap_dir}: writing snapshot failed: {exc}") from exc
            self._record_snapshot(sf)
        finally:
            self._busy.release()

    def adopt_snapshot(self, meta: SnapshotMeta) -> None:
        """Like `save_snapshot` for a file that is already durable in `snap_dir` (written by a forked
        child with `write_snapshot`, so the node never stops to serialise its state)."""
        self._enter()
        try:
            self._check_snapshot_index(meta)
            path = self._snap_dir / snapshot_name(meta.index, meta.term)
            if not path.is_file():
                raise WalError(f"{path}: no such snapshot file to adopt")
            self._record_snapshot(SnapFile(index=meta.index, term=meta.term, path=path))
        finally:
            self._busy.release()

    def _check_snapshot_index(self, meta: SnapshotMeta) -> None:
        if meta.index <= 0:
            raise WalError("cannot save an empty snapshot")
        if self._snapshots and meta.index < self._snapshots[0].index:
            raise WalError(
                f"snapshot {meta.index} is older than the saved snapshot {self._snapshots[0].index}"
            )

    def _record_snapshot(self, sf: SnapFile) -> None:
        self._append(rec.encode_marker(sf.index, sf.term, first=True, last=True), sync=True)
        self._marker = rec.Marker(sf.index, sf.term)
        self._snap_index = sf.index
        self._last_index = max(self._last_index, sf.index)
        self._snapshots = [sf] + [s for s in self._snapshots if s.path != sf.path]
        self._compact()

    def _compact(self) -> None:
        keep = max(1, self.keep_snapshots)
        dropped = self._snapshots[keep:]
        self._snapshots = self._snapshots[:keep]
        floor = self._snapshots[-1].index if len(self._snapshots) >= keep else 0
        removed = 0
        # Only a prefix, only whole non-tail segments: replaying a suffix of the segments then
        # yields the same entries above `floor` as replaying all of them.
        while len(self._segments) > 1 and self._segments[0].max_index <= floor and floor > 0:
            seg = self._segments.pop(0)
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
            removed += 1
        try:
            if removed:
                fsync_dir(self._wal_dir)
            for sf in dropped:
                with contextlib.suppress(FileNotFoundError):
                    sf.path.unlink()
            if dropped:
                fsync_dir(self._snap_dir)
        except OSError as exc:
            # Deleting garbage failed; nothing acknowledged is at risk, the next compaction retries
            # the segments, and stale snapshot files are harmless.
            warnings.warn(f"{self._dir}: cleanup after snapshot failed: {exc}", WalWarning, stacklevel=3)

    def sync(self) -> None:
        """fdatasync anything written with sync=False."""
        self._enter()
        try:
            if self._unsynced:
                self._sync()
        finally:
            self._busy.release()

    def close(self) -> None:
        """fdatasync anything unsynced, close the tail and release the directory lock. Idempotent,
        and allowed after a failure (it then only releases resources)."""
        if self._closed:
            return
        if not self._busy.acquire(blocking=False):
            raise WalError("WAL used concurrently from two threads")
        try:
            if self._fd >= 0:
                try:
                    if self._unsynced and self._failed is None:
                        _fdatasync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = -1
        finally:
            self._closed = True
            self._release_lock()
            self._busy.release()

    def __enter__(self) -> WAL:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
