"""The node-local, content-addressed blob store: BLAKE3-named files under `<data_dir>/blobs/`.

Layout::

    blobs/data/<hh>/<hash>     a complete blob; <hash> is the 64-hex BLAKE3 of its bytes, <hh> its
                               first two characters (keeps directories small)
    blobs/tmp/<random>.part    a blob being received; never visible under a hash
    blobs/tags.json            tags (name -> hash) and, per untagged hash, when it became untagged

Invariants:

* A file exists under `data/` only if its bytes were fully received, hashed to exactly that name,
  fsynced and renamed there (then the directory is fsynced). A crash at any point leaves at most a
  `.part` file in `tmp/`, which the next `open` deletes: no partial blob is ever visible.
* A blob is kept while any tag points at it. Once it has no tag, it is deleted by `gc` after the
  grace period (counted from when it lost its last tag or arrived untagged), so a blob being added
  or fetched is never collected under the caller's feet.
* The tags file is replaced atomically (temp, fsync, rename), so it is always one consistent version.
* Every public method is safe to call from worker threads (one lock guards tags and bookkeeping);
  large reads and writes happen outside the lock.

Time enters only as the `now` argument (seconds), chosen by the caller.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from aspen.blob.directio import SequentialWriter

__all__ = [
    "DEFAULT_MAX_BLOB_SIZE",
    "BlobInfo",
    "BlobStore",
    "BlobTooLargeError",
    "HashMismatchError",
    "PendingBlob",
    "is_valid_hash",
    "validate_hash",
]

DEFAULT_MAX_BLOB_SIZE = 1024 * 1024 * 1024
#: Reads and hashing go in chunks of this size: large enough for throughput, small enough for memory.
IO_CHUNK = 4 * 1024 * 1024
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobTooLargeError(ValueError):
    """A blob would exceed the store's size limit."""


class HashMismatchError(ValueError):
    """Received (or stored) bytes do not hash to the expected BLAKE3 hash."""


def is_valid_hash(text: str) -> bool:
    return bool(_HASH_RE.match(text))


def validate_hash(text: str) -> str:
    """The hash if it is 64 lowercase hex characters, else `ValueError("invalid hash: ...")`."""
    if not is_valid_hash(text):
        raise ValueError(f"invalid hash: {text!r} is not 64 lowercase hex characters")
    return text


def new_hasher() -> blake3.blake3:
    # Several threads for large updates: hashing then runs well ahead of disk and network.
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


@dataclass(frozen=True, slots=True)
class BlobInfo:
    hash: str
    size_bytes: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingBlob:
    """A blob being received: bytes go to a temp file and into the hasher; `commit` publishes it."""

    def __init__(self, store: BlobStore, expected_size: int | None) -> None:
        self._store = store
        self.expected_size = expected_size
        self.path = store.tmp_dir / f"{secrets.token_hex(8)}.part"
        # Past the page cache where possible (see `directio`): the bytes are fsynced at commit.
        self._file: SequentialWriter | None = SequentialWriter(self.path)
        self._hasher = new_hasher()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            raise ValueError("blob already committed or aborted")
        self.size += len(data)
        limit = self.expected_size if self.expected_size is not None else self._store.max_size
        if self.size > limit:
            raise BlobTooLargeError(f"blob exceeds {limit} bytes")
        self._hasher.update(data)
        self._file.write(data)

    def hexdigest(self) -> str:
        return str(self._hasher.hexdigest())

    def commit(self, expected_hash: str | None = None, *, tag: str | None = None, now: float) -> BlobInfo:
        """Verify, fsync and rename into place. Returns the blob; raises `HashMismatchError` (and
        discards the bytes) if they do not hash to `expected_hash`, or if fewer than the announced
        size arrived."""
        if self._file is None:
            raise ValueError("blob already committed or aborted")
        digest = self.hexdigest()
        try:
            if self.expected_size is not None and self.size != self.expected_size:
                raise HashMismatchError(f"received {self.size} of {self.expected_size} bytes")
            if expected_hash is not None and digest != expected_hash:
                raise HashMismatchError(f"received bytes hash to {digest}, expected {expected_hash}")
            self._file.sync()
        except BaseException:
            self.abort()
            raise
        self._file.close()
        self._file = None
        return self._store._publish(self.path, digest, self.size, tag=tag, now=now)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path, *, max_size: int = DEFAULT_MAX_BLOB_SIZE, now: float) -> None:
        if max_size <= 0:
            raise ValueError("max blob size must be positive")
        self.root = root
        self.max_size = max_size
        self.data_dir = root / "data"
        self.tmp_dir = root / "tmp"
        self._tags_path = root / "tags.json"
        self._lock = threading.Lock()
        # Blobs are 0600 in 0700 directories whatever the umask: they are the users' data.
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.tmp_dir.mkdir(mode=0o700, exist_ok=True)
        # Anything in tmp/ is a transfer a crash interrupted: it was never visible, drop it.
        for part in self.tmp_dir.iterdir():
            part.unlink(missing_ok=True)
        self._tags: dict[str, str] = {}
        self._untagged_since: dict[str, float] = {}
        self._load(now)

    # ----------------------------------------------------------------------------- persistence --
    def _load(self, now: float) -> None:
        if self._tags_path.exists():
            doc = json.loads(self._tags_path.read_text())
            self._tags = {str(k): str(v) for k, v in doc.get("tags", {}).items()}
            self._untagged_since = {str(k): float(v) for k, v in doc.get("untagged_since", {}).items()}
        tagged = set(self._tags.values())
        present = {info.hash for info in self.iter_blobs()}
        # Blobs with neither a tag nor a recorded time (e.g. a tags file lost) get a full grace period.
        for h in present - tagged:
            self._untagged_since.setdefault(h, now)
        self._untagged_since = {h: t for h, t in self._untagged_since.items() if h in present - tagged}

    def _save(self) -> None:
        doc = {"tags": self._tags, "untagged_since": self._untagged_since}
        tmp = self._tags_path.with_name("tags.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover .tmp keeps the mode it was created with
        with open(fd, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._tags_path)
        _fsync_dir(self.root)

    # ------------------------------------------------------------------------------------ data --
    def path_of(self, digest: str) -> Path:
        return self.data_dir / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size_of(self, digest: str) -> int | None:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            return None

    def begin(self, expected_size: int | None = None) -> PendingBlob:
        if expected_size is not None and expected_size > self.max_size:
            raise BlobTooLargeError(f"blob of {expected_size} bytes exceeds the limit of {self.max_size}")
        return PendingBlob(self, expected_size)

    def add_bytes(self, data: bytes, *, tag: str | None = None, now: float) -> tuple[BlobInfo, bool]:
        """Store `data`; returns the blob and whether it was new on this node."""
        existed = self.has(str(blake3.blake3(data).hexdigest()))
        pending = self.begin(len(data))
        try:
            pending.write(data)
        except BaseException:
            pending.abort()
            raise
        return pending.commit(tag=tag, now=now), not existed

    def _publish(self, part: Path, digest: str, size: int, *, tag: str | None, now: float) -> BlobInfo:
        final = self.path_of(digest)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        with self._lock:
            if final.is_file():
                part.unlink(missing_ok=True)  # same bytes already stored
            else:
                os.replace(part, final)
                _fsync_dir(final.parent)
            if tag is not None:
                self._tags[tag] = digest
                self._untagged_since.pop(digest, None)
            elif digest not in self._tags.values():
                self._untagged_since.setdefault(digest, now)
            self._save()
        return BlobInfo(digest, size)

    def open_read(self, digest: str) -> BinaryIO:
        """The stored file, for reading (raises FileNotFoundError)."""
        return open(self.path_of(digest), "rb")

    def read_bytes(self, digest: str) -> bytes:
        return self.path_of(digest).read_bytes()

    def verify(self, digest: str) -> bool:
        """Re-hash the stored file; False if it is missing or its bytes no longer match its name."""
        hasher = new_hasher()
        try:
            with self.open_read(digest) as f:
                for chunk in iter(lambda: f.read(IO_CHUNK), b""):
                    hasher.update(chunk)
        except FileNotFoundError:
            return False
        return bool(hasher.hexdigest() == digest)

    def discard(self, digest: str) -> None:
        """Remove the stored bytes now (a corrupt copy); its tags stay, so a repaired copy is kept."""
        self.path_of(digest).unlink(missing_ok=True)

    def iter_blobs(self, after: str | None = None) -> Iterator[BlobInfo]:
        """Stored blobs in hash order, strictly after `after` if given."""
        for sub in sorted(p for p in self.data_dir.iterdir() if p.is_dir()):
            if after is not None and sub.name < after[:2]:
                continue
            for path in sorted(sub.iterdir()):
                name = path.name
                if not is_valid_hash(name) or (after is not None and name <= after):
                    continue
                try:
                    yield BlobInfo(name, path.stat().st_size)
                except FileNotFoundError:  # collected meanwhile
                    continue

    def page(self, limit: int, after: str | None = None) -> list[BlobInfo]:
        out: list[BlobInfo] = []
        for info in self.iter_blobs(after):
            if len(out) >= limit:
                break
            out.append(info)
        return out

    # ------------------------------------------------------------------------------------ tags --
    def tags_of(self, digest: str) -> list[str]:
        with self._lock:
            return sorted(name for name, h in self._tags.items() if h == digest)

    def set_tag(self, name: str, digest: str, *, now: float) -> None:
        """Point tag `name` at `digest` (re-pointing it if it named another blob)."""
        with self._lock:
            old = self._tags.get(name)
            self._tags[name] = digest
            self._untagged_since.pop(digest, None)
            if old is not None and old != digest:
                self._mark_if_untagged(old, now)
            self._save()

    def remove_tags(self, names: list[str], *, now: float) -> int:
        """Remove the named tags (missing names are fine); returns how many existed."""
        with self._lock:
            removed = 0
            for name in names:
                old = self._tags.pop(name, None)
                if old is not None:
                    removed += 1
                    self._mark_if_untagged(old, now)
            if removed:
                self._save()
            return removed

    def _mark_if_untagged(self, digest: str, now: float) -> None:
        if digest not in self._tags.values():
            self._untagged_since.setdefault(digest, now)

    # -------------------------------------------------------------------------------------- gc --
    def gc(self, *, now: float, grace_s: float) -> list[str]:
        """Delete every untagged blob whose grace period has passed; returns their hashes."""
        with self._lock:
            due = [h for h, since in self._untagged_since.items() if now - since >= grace_s]
            for digest in due:
                self.path_of(digest).unlink(missing_ok=True)
                del self._untagged_since[digest]
            if due:
                self._save()
            return due
