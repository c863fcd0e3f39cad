"""The Raft log as the core sees it: durable entries in `Storage` plus not-yet-persisted ones.

Layout (indexes grow to the right)::

    storage: [first_index .......... storage.last]
    unstable:                 [offset ........ last_index]   (may overlap storage: it wins)

Invariants:
* `applied <= committed <= last_index()`; `committed` never decreases.
* Every entry at or below `committed` is identical on every node that has it (log matching); an
  attempt to truncate at or below `committed` is a bug and raises `AssertionError`.
* Unstable entries override storage for indexes >= `unstable.offset`; they become stable only when
  the driver reports them persisted (`stable_to`), and only if the entry is still the same one
  (same term at that index) - a newer leader may have replaced it in the meantime.
* `next_committed_entries` never returns an entry that is not yet stable, so the state machine
  never applies something a crash could make disappear from this node's disk.
"""

from __future__ import annotations

from aspen.raft.core.storage import CompactedError, Storage, UnavailableError, limit_size
from aspen.raft.core.types import Entry, Snapshot

__all__ = ["RaftLog", "Unstable"]


class Unstable:
    """Entries (and possibly a snapshot) handed to the driver but not yet reported durable."""

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        #: Index of `entries[0]` (or where the next entry would go).
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        gt = self.maybe_term(i)
        # Only if the entry we persisted is still the one in the log (the term check) and it is
        # actually unstable (not the snapshot's index).
        if gt is not None and gt == t and i >= self.offset:
            del self.entries[: i + 1 - self.offset]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.meta.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces everything unstable and shadows storage from `after` on; storage's stale
            # suffix is overwritten when these entries are persisted (MemoryStorage.append).
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + ents

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """Storage + unstable tail + commit/apply cursors."""

    def __init__(self, storage: Storage, max_next_ents_size: int | None = None) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot is committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1
        self.max_next_ents_size = max_next_ents_size
        #: Entries up to this index may be applied before being persisted. Only bootstrap uses it
        #: (its entries are committed by fiat and are persisted in the same Ready before applying).
        self.unstable_apply_limit = 0

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, len(unstable)={len(self.unstable.entries)})"
        )

    # -- indexes and terms ------------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def stable_last_index(self) -> int:
        """Highest index such that our whole log up to it is durable."""
        if self.unstable.snapshot is not None:
            return 0  # the new base is not durable yet; claim nothing
        return min(self.unstable.offset - 1, self.storage.last_index())

    def term(self, i: int) -> int:
        dummy = self.first_index() - 1
        if i < dummy:
            raise CompactedError(f"index {i} compacted")
        if i > self.last_index():
            raise UnavailableError(f"index {i} beyond last index {self.last_index()}")
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def last_term(self) -> int:
        return self.term(self.last_index())

    def zero_term_on_err(self, i: int) -> int:
        try:
            return self.term(i)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up to date as ours."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and lasti >= self.last_index())

    # -- conflicts --------------------------------------------------------------------------

    def find_conflict(self, ents: list[Entry]) -> int:
        """Index of the first entry of `ents` that conflicts with (or extends) our log, else 0."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest i <= index with term(i) <= term, and that term (etcd's findConflictByTerm).

        Used on both sides of a rejected append so the leader can skip a whole term of
        divergent entries per round trip instead of one entry.
        """
        if index > self.last_index():
            return index, 0
        while index > 0:
            try:
                t = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # -- mutation ---------------------------------------------------------------------------

    def maybe_append(self, index: int, log_term: int, committed: int, ents: list[Entry]) -> int | None:
        """Follower side of AppendEntries. Returns the last index known to match the leader, or
        None if our log has no entry (index, log_term) and the leader must back off."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci != 0:
            if ci <= self.committed:
                raise AssertionError(f"entry {ci} conflicts with committed entry {self.committed}")
            self.append(ents[ci - (index + 1) :])
        # Only what the leader told us matches may be committed: our suffix beyond last_new may
        # still be divergent.
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise AssertionError(f"append after {after} is below committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def commit_to(self, tocommit: int) -> None:
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise AssertionError(f"commit {tocommit} beyond last index {self.last_index()}")
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Raft §5.4.2: only entries of the current term are committed by counting replicas."""
        if max_index > self.committed and self.zero_term_on_err(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise AssertionError(f"applied {i} outside [{self.applied}, {self.committed}]")
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.meta.index
        self.unstable.restore(s)

    # -- reads ------------------------------------------------------------------------------

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_pending_snapshot(self) -> bool:
        return self.unstable.snapshot is not None

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def _apply_hi(self) -> int:
        stable = self.unstable.offset - 1
        return min(self.committed, max(stable, self.unstable_apply_limit))

    def has_next_committed_entries(self) -> bool:
        if self.has_pending_snapshot():
            return False
        lo = max(self.applied + 1, self.first_index())
        return self._apply_hi() >= lo

    def next_committed_entries(self) -> list[Entry]:
        if self.has_pending_snapshot():
            return []  # the snapshot must be applied first
        lo = max(self.applied + 1, self.first_index())
        hi = self._apply_hi() + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, self.max_next_ents_size)

    def entries(self, i: int, max_bytes: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_bytes)

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi), size-limited; raises CompactedError if lo is compacted."""
        if lo > hi:
            raise AssertionError(f"invalid slice {lo} > {hi}")
        if lo < self.first_index():
            raise CompactedError(f"index {lo} compacted")
        if hi > self.last_index() + 1:
            raise AssertionError(f"slice [{lo},{hi}) beyond last index {self.last_index()}")
        if lo == hi:
            return []
        ents: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            stored = self.storage.entries(lo, min(hi, off), max_bytes)
            if len(stored) < min(hi, off) - lo:
                return stored  # size limit hit inside storage
            ents = stored
        if hi > off:
            ents = ents + self.unstable.slice(max(lo, off), hi)
        return limit_size(ents, max_bytes)
