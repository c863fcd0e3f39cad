"""Read-only view of the durable Raft log used by the core, and an in-memory implementation.

Invariants of `MemoryStorage` (mirroring etcd-io/raft's MemoryStorage):
* `_ents[0]` is a dummy entry at the snapshot index carrying the snapshot term, so `term(i)` works
  for the last compacted index (needed to check `prev_log_term` of the first retained entry).
* `_ents` is contiguous: `_ents[k].index == _ents[0].index + k`.
* `first_index() == snapshot index + 1`, `last_index() >= first_index() - 1`.
* Storage only ever holds what the driver declared durable; the core never writes to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from aspen.raft.core.confchange import apply_conf_change, decode_conf_change
from aspen.raft.core.types import (
    EMPTY_SNAPSHOT,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "CompactedError",
    "MemoryStorage",
    "SnapshotOutOfDateError",
    "Storage",
    "StorageError",
    "UnavailableError",
    "conf_state_from",
    "entry_size",
    "limit_size",
]

#: Fixed per-entry overhead used for size accounting (index, term, type, framing).
ENTRY_OVERHEAD = 16


class StorageError(Exception):
    """Base class of storage lookups that cannot be served."""


class CompactedError(StorageError):
    """The requested index is at or below the compaction point (use the snapshot instead)."""


class UnavailableError(StorageError):
    """The requested index is beyond the last stored entry."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than (or equal to) the current one was offered."""


def entry_size(e: Entry) -> int:
    """Approximate encoded size of an entry, used for message and inflight byte limits."""
    return len(e.data) + ENTRY_OVERHEAD


def limit_size(ents: list[Entry], max_bytes: int | None) -> list[Entry]:
    """Longest prefix of `ents` within `max_bytes`, but always at least one entry so that a
    single oversized entry can still make progress."""
    if max_bytes is None or not ents:
        return ents
    total = 0
    for k, e in enumerate(ents):
        total += entry_size(e)
        if k > 0 and total > max_bytes:
            return ents[:k]
    return ents


class Storage(Protocol):
    """What the Raft core needs from the durable log. All indexes are Raft log indexes."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), size-limited (at least one entry if lo < hi)."""
        ...

    def term(self, i: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """In-memory `Storage`; the driver fills it with what it has persisted."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._conf_state = ConfState()
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # -- Storage protocol -------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} compacted (first is {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries [{lo},{hi}) beyond last index {self.last_index()}")
        if lo >= hi:
            return []
        return limit_size(self._ents[lo - offset : hi - offset], max_bytes)

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise CompactedError(f"index {i} compacted")
        if i - offset >= len(self._ents):
            raise UnavailableError(f"index {i} beyond last index {self.last_index()}")
        return self._ents[i - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- driver-side mutation ---------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def conf_state(self) -> ConfState:
        return self._conf_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def set_conf_state(self, cs: ConfState) -> None:
        self._conf_state = cs

    def all_entries(self) -> list[Entry]:
        """Every retained entry (without the dummy); for tests and snapshots of the disk."""
        return list(self._ents[1:])

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by `snap` (a follower installing a leader's snapshot)."""
        if snap.meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDateError(
                f"snapshot {snap.meta.index} not newer than {self._snapshot.meta.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=snap.meta.term, index=snap.meta.index)]
        self._conf_state = snap.meta.conf_state

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a state-machine image at applied `index`; does not compact by itself."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDateError(f"snapshot {index} not newer than {self._snapshot.meta.index}")
        if index > self.last_index():
            raise ValueError(f"snapshot index {index} beyond last index {self.last_index()}")
        offset = self._ents[0].index
        meta = SnapshotMeta(index=index, term=self._ents[index - offset].term, conf_state=conf_state)
        self._snapshot = Snapshot(meta=meta, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries up to and including `index` (keeping it as the dummy entry). The
        driver must only compact up to a snapshot it holds, or followers needing those entries
        could not be caught up."""
        offset = self._ents[0].index
        if index <= offset:
            raise CompactedError(f"index {index} already compacted")
        if index > self.last_index():
            raise ValueError(f"compact {index} beyond last index {self.last_index()}")
        k = index - offset
        self._ents = [Entry(term=self._ents[k].term, index=index), *self._ents[k + 1 :]]

    def append(self, entries: Sequence[Entry]) -> None:
        """Persist `entries`, truncating any conflicting suffix (a new leader overwrote it)."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # entirely compacted already: nothing to do
        ents = list(entries)
        if first > ents[0].index:
            ents = ents[first - ents[0].index :]
        k = ents[0].index - self._ents[0].index
        if k > len(self._ents):
            raise ValueError(f"missing log entries: last {self.last_index()}, appending at {ents[0].index}")
        # In place: copying the whole in-memory log (up to a snapshot interval of entries) on every
        # append made each one O(log length).
        if k < len(self._ents):
            del self._ents[k:]
        self._ents.extend(ents)


def conf_state_from(snapshot: Snapshot | None, entries: Iterable[Entry], commit: int) -> ConfState:
    """Membership after restart: the snapshot's, then every committed CONF_CHANGE entry after it.

    Invalid changes are skipped exactly as the core skips them when applying, so the result equals
    what a live node would have computed.
    """
    base_index = 0
    cs = ConfState()
    if snapshot is not None and not snapshot.is_empty():
        cs = snapshot.meta.conf_state
        base_index = snapshot.meta.index
    for e in entries:
        if e.index <= base_index or e.index > commit or e.type != EntryType.CONF_CHANGE:
            continue
        try:
            cs = apply_conf_change(cs, decode_conf_change(e.data))
        except ValueError:
            continue
    return cs
