"""The order in which a driver carries out one `Ready`: one pure function, `plan`.

The asyncio driver (`aspen.raft.node`) and the simulator (`tests/sim/raftsim.py`) both execute the
steps this function returns, in order, so the simulator's seeds check the order the nodes run.
For a Ready the plan is:

1. `SendEarly`: a leader's appends that carry entries (and the other `early_messages`) go out
   while its own fsync runs. The core counts the leader's log toward commit only after
   `advance()`, so this is safe, and one write costs one fsync round trip, not two in a row.
2. `Apply` (early): entries already committed are applied and their callers answered before this
   Ready's write. They were persisted by an earlier Ready and are on a majority's disks, so
   nothing they depend on is in this write; the commit index itself is volatile state. Not when
   the Ready installs a snapshot (which comes before anything after it), nor when committed
   entries are in this very Ready's write (bootstrap commits entries by construction).
3. `Notices`: early appends without entries only announce a new commit index. They follow the
   early apply, so the callers of those entries are answered first; the driver may hold them
   back briefly (a lone writer's next append carries the commit index anyway).
4. `PersistSnapshot`, then `Persist`: the snapshot, entries and hard state become durable with one
   fsync. A hard state that only moves the commit index is not written on its own (`durable` is
   False and there are no entries): a node that restarts with an older commit index learns the
   newer one from its leader, and entries above it are already on a majority's disks.
5. `Send`: votes and acknowledgements promise what step 4 made durable.
6. `InstallSnapshot`, then `Apply` (late) when step 2 did not apply.

Pure: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass

from aspen.raft.core.types import Entry, HardState, Message, MessageType, Ready, Snapshot


@dataclass(frozen=True, slots=True)
class SendEarly:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Notices:
    """Commit-index-only appends: send them, or hold them back (driver policy)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Apply:
    """Apply the Ready's committed entries (and release its reads and dropped proposals)."""

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class PersistSnapshot:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Persist:
    """Make `entries` durable, and `hard_state` too when `durable`; the in-memory hard state takes
    `hard_state` either way."""

    entries: tuple[Entry, ...]
    hard_state: HardState | None
    durable: bool


@dataclass(frozen=True, slots=True)
class Send:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    snapshot: Snapshot


Step = SendEarly | Notices | Apply | PersistSnapshot | Persist | Send | InstallSnapshot


def plan(rd: Ready, saved: HardState) -> tuple[Step, ...]:
    """The ordered steps for `rd`; `saved` is the hard state already on disk."""
    steps: list[Step] = []
    if rd.early_messages:
        early: list[Message] = []
        notices: list[Message] = []
        for msg in rd.early_messages:
            if msg.type == MessageType.APP and not msg.entries:
                notices.append(msg)
            else:
                early.append(msg)
        if early:
            steps.append(SendEarly(tuple(early)))
    else:
        notices = []
    snap = rd.snapshot
    installs_snapshot = snap is not None and not snap.is_empty()
    apply_first = not installs_snapshot and not (
        rd.entries and rd.committed_entries and rd.committed_entries[-1].index >= rd.entries[0].index
    )
    if apply_first:
        steps.append(Apply(rd.committed_entries))
    if notices:
        steps.append(Notices(tuple(notices)))
    if installs_snapshot:
        assert snap is not None
        steps.append(PersistSnapshot(snap))
    hs = rd.hard_state
    term_or_vote = hs is not None and (hs.term != saved.term or hs.vote != saved.vote)
    if rd.entries or hs is not None:
        steps.append(Persist(rd.entries, hs, bool(rd.entries) or term_or_vote))
    if rd.messages:
        steps.append(Send(rd.messages))
    if installs_snapshot:
        assert snap is not None
        steps.append(InstallSnapshot(snap))
    if not apply_first:
        steps.append(Apply(rd.committed_entries))
    return tuple(steps)


__all__ = [
    "Apply",
    "InstallSnapshot",
    "Notices",
    "Persist",
    "PersistSnapshot",
    "Send",
    "SendEarly",
    "Step",
    "plan",
]
