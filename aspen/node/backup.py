"""Backup images: what `aspen-cli cluster snapshot save` downloads and `aspen-node restore` seeds from.

File format (one file, self-checking)::

    MAGIC (8 bytes "ASPENBK1") | msgpack body | BLAKE3(MAGIC + body) (32 bytes)

The body is a map `{"format": 1, "applied_index", "node_id", "created_unix_ms", "kv": <KvStateMachine
snapshot bytes>}`. Membership is deliberately not in it: a restore seeds a *new* cluster whose only
voter is the restored node (like `etcdutl snapshot restore`), so the old members' addresses would be
wrong there.

Invariants:

* An image is taken at a ReadIndex point on the serving node, in one synchronous step on the event
  loop (nothing is applied while it is serialised), so it is a linearizable cut: it holds every write
  acknowledged before `snapshot save` started.
* The checksum the node reports is BLAKE3 over the whole file (what `b3sum FILE` prints); the trailer
  lets the offline restore verify a file without that report.
* `SnapshotExports` keeps at most `MAX_EXPORTS` images, each for `TTL_S` after its last use; time is
  a parameter (`now`), so the cache is plain code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import msgpack

from aspen.kv import KvStateMachine
from aspen.raft.core.types import ConfState, HardState, Snapshot, SnapshotMeta
from aspen.raft.wal import WAL

MAGIC = b"ASPENBK1"
FORMAT = 1
_DIGEST = 32
#: Chunk served per `GetSnapshotChunk`: well under the 16 MiB message limit with msgpack overhead.
CHUNK_BYTES = 4 * 1024 * 1024
MAX_EXPORTS = 2
TTL_S = 120.0


class BackupError(ValueError):
    """A backup file that cannot be used (damaged, wrong format) or a data dir that is not empty."""


def encode_image(kv_image: bytes, applied_index: int, node_id: int, created_unix_ms: int) -> bytes:
    body: bytes = msgpack.packb(
        {
            "format": FORMAT,
            "applied_index": applied_index,
            "node_id": node_id,
            "created_unix_ms": created_unix_ms,
            "kv": kv_image,
        },
        use_bin_type=True,
    )
    head = MAGIC + body
    return head + blake3.blake3(head).digest()


@dataclass(frozen=True, slots=True)
class BackupImage:
    applied_index: int
    node_id: int
    created_unix_ms: int
    kv: bytes


def decode_image(data: bytes) -> BackupImage:
    """Verify the trailer and decode; raises `BackupError` on any damage."""
    if len(data) < len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        raise BackupError("not an Aspen backup file (bad magic)")
    head, digest = data[:-_DIGEST], data[-_DIGEST:]
    if blake3.blake3(head).digest() != digest:
        raise BackupError("backup file is damaged (BLAKE3 trailer mismatch)")
    try:
        body: Any = msgpack.unpackb(head[len(MAGIC) :], raw=False)
        if body["format"] != FORMAT:
            raise BackupError(f"unsupported backup format {body['format']!r}")
        image = BackupImage(
            int(body["applied_index"]), int(body["node_id"]), int(body["created_unix_ms"]), bytes(body["kv"])
        )
    except BackupError:
        raise
    except Exception as exc:
        raise BackupError(f"backup file body is malformed: {exc}") from None
    return image


def file_checksum(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


@dataclass(slots=True)
class _Export:
    data: bytes
    applied_index: int
    checksum: str
    last_used: float


class SnapshotExports:
    """Serialised images kept briefly by id so a client can fetch them in chunks."""

    def __init__(self) -> None:
        self._exports: dict[str, _Export] = {}

    def add(self, data: bytes, applied_index: int, now: float) -> tuple[str, _Export]:
        self._expire(now)
        while len(self._exports) >= MAX_EXPORTS:  # the oldest goes: bounded memory
            oldest = min(self._exports, key=lambda k: self._exports[k].last_used)
            del self._exports[oldest]
        export_id = secrets.token_hex(16)
        export = _Export(data, applied_index, file_checksum(data), now)
        self._exports[export_id] = export
        return export_id, export

    def chunk(self, export_id: str, offset: int, now: float) -> tuple[bytes, _Export] | None:
        """The bytes at `offset` (at most CHUNK_BYTES), or None if the id is unknown or expired."""
        self._expire(now)
        export = self._exports.get(export_id)
        if export is None:
            return None
        export.last_used = now
        data = export.data[offset : offset + CHUNK_BYTES]
        if offset + len(data) >= len(export.data):
            del self._exports[export_id]  # fully served: free the memory now
        return data, export

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._exports.items() if now - e.last_used > TTL_S]:
            del self._exports[key]


# ------------------------------------------------------------------------------------ restore --
@dataclass(frozen=True, slots=True)
class RestoreReport:
    applied_index: int
    keys: int
    source_node_id: int


def restore_data_dir(backup: Path, data_dir: Path, node_id: int) -> RestoreReport:
    """Write a new data dir whose WAL holds one snapshot: the backup's KV state, with `node_id` as the
    only voter. `aspen-node --data-dir DATA_DIR --node-id NODE_ID` then serves it as a one-node
    cluster. Refuses a data dir that already holds a WAL or snapshots."""
    image = decode_image(backup.read_bytes())
    kv = KvStateMachine.from_snapshot(image.kv)  # also validates the KV image before anything is written
    for sub in ("wal", "snap"):
        d = data_dir / sub
        if d.is_dir() and any(p.name != "LOCK" for p in d.iterdir()):
            raise BackupError(f"{data_dir} already holds Aspen data ({sub}/ is not empty); use a new dir")
    # Keep the backup's index: KV revisions are log indices, so the new log must continue above them.
    index = max(1, image.applied_index)
    # The driver's snapshot payload (aspen.raft.node `_snapshot_data`): members stay empty; the node
    # records its own address on first start.
    payload: bytes = msgpack.packb({"sm": image.kv, "members": []}, use_bin_type=True)
    snap = Snapshot(SnapshotMeta(index=index, term=1, conf_state=ConfState(voters=(node_id,))), payload)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    wal, _ = WAL.open(data_dir)
    try:
        wal.save_snapshot(snap)
        wal.save(HardState(term=1, vote=node_id, commit=index), [])
    finally:
        wal.close()
    return RestoreReport(applied_index=index, keys=len(kv), source_node_id=image.node_id)
