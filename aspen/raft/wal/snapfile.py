"""Snapshot files: ``snap/snap-<16-hex term>-<16-hex index>.snap``.

Layout: a 28-byte header ``magic(8) | meta_len u32 | data_len u64 | data_crc u32 | head_crc u32``,
then the msgpack-encoded meta ``[index, term, voters, learners]``, then the data. ``head_crc`` is
the CRC32C of the first 24 header bytes followed by the meta bytes; ``data_crc`` covers the data.
A file is valid only if both CRCs match, its size is exactly header + meta + data, and the meta
agrees with the file name.

Files are written to ``<name>.tmp``, fsynced, renamed into place and the directory fsynced, so a
``.snap`` file either is complete or (after media damage) fails its CRC; it is never half-written.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import msgpack
from google_crc32c import value as crc_value

from aspen.raft.core.types import ConfState, Snapshot, SnapshotMeta

SNAP_MAGIC = b"ASPNSNP1"
_HEAD = struct.Struct("<8sIQII")
_HEAD_CRC_SPAN = _HEAD.size - 4
_NAME = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
#: Refuse absurd meta sizes before allocating (a corrupt length field must not OOM the process).
_MAX_META = 1 << 24


class SnapshotFileError(Exception):
    """This snapshot file is unusable (it is skipped, never fatal)."""


@dataclass(frozen=True, slots=True)
class SnapFile:
    index: int
    term: int
    path: Path


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{term:016x}-{index:016x}.snap"


def list_snapshots(snap_dir: Path) -> list[SnapFile]:
    """Snapshot files by name, newest (highest index, then term) first. Nothing is validated."""
    found = []
    for p in snap_dir.iterdir():
        m = _NAME.match(p.name)
        if m is not None:
            found.append(SnapFile(index=int(m.group(2), 16), term=int(m.group(1), 16), path=p))
    found.sort(key=lambda s: (s.index, s.term), reverse=True)
    return found


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(snap_dir: Path, snapshot: Snapshot) -> SnapFile:
    """temp -> fsync -> rename -> fsync(dir). Returns the final file."""
    meta = snapshot.meta
    data = bytes(snapshot.data)
    meta_bytes = msgpack.packb(
        [meta.index, meta.term, list(meta.conf_state.voters), list(meta.conf_state.learners)]
    )
    head = bytearray(_HEAD.pack(SNAP_MAGIC, len(meta_bytes), len(data), crc_value(data), 0))
    head_crc = crc_value(bytes(head[:_HEAD_CRC_SPAN]) + meta_bytes)
    struct.pack_into("<I", head, _HEAD_CRC_SPAN, head_crc)
    final = snap_dir / snapshot_name(meta.index, meta.term)
    tmp = final.with_name(final.name + ".tmp")
    # 0600 whatever the umask (the snapshot holds every value); fchmod: a leftover .tmp keeps the
    # mode it was created with.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "wb") as f:
        f.write(head)
        f.write(meta_bytes)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    # The rename is only durable once the directory entry is.
    fsync_dir(snap_dir)
    return SnapFile(index=meta.index, term=meta.term, path=final)


def read_snapshot(sf: SnapFile) -> Snapshot:
    """Read and fully verify one snapshot file; SnapshotFileError if it is unusable."""
    try:
        with open(sf.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD.size)
            if len(head) != _HEAD.size:
                raise SnapshotFileError("truncated header")
            magic, meta_len, data_len, data_crc, head_crc = _HEAD.unpack(head)
            if magic != SNAP_MAGIC:
                raise SnapshotFileError("bad magic")
            if meta_len > _MAX_META or size != _HEAD.size + meta_len + data_len:
                raise SnapshotFileError(
                    f"size {size} does not match header (meta {meta_len}, data {data_len})"
                )
            meta_bytes = f.read(meta_len)
            if crc_value(head[:_HEAD_CRC_SPAN] + meta_bytes) != head_crc:
                raise SnapshotFileError("header checksum mismatch")
            data = f.read(data_len)
    except OSError as exc:
        raise SnapshotFileError(f"unreadable: {exc}") from exc
    if len(data) != data_len or crc_value(data) != data_crc:
        raise SnapshotFileError("data checksum mismatch")
    try:
        index, term, voters, learners = msgpack.unpackb(meta_bytes)
        meta = SnapshotMeta(
            index=int(index),
            term=int(term),
            conf_state=ConfState(
                voters=tuple(int(v) for v in voters), learners=tuple(int(v) for v in learners)
            ),
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise SnapshotFileError(f"bad meta: {exc}") from exc
    if (meta.index, meta.term) != (sf.index, sf.term):
        raise SnapshotFileError(f"meta ({meta.index}, {meta.term}) does not match the file name")
    return Snapshot(meta=meta, data=data)
