"""Leader-side bookkeeping of each peer's replication state, and the membership tracker.

Invariants:
* `match < next` for every Progress; `match` never decreases while a node stays leader.
* PROBE: at most one append in flight (`probe_sent`) until the peer answers - we do not know where
  its log diverges. REPLICATE: appends are pipelined optimistically (`next` advanced on send),
  bounded by `Inflights`. SNAPSHOT: nothing is sent until the snapshot is reported/acked.
* Only voters count for quorums (commit, elections, check-quorum, ReadIndex); learners only
  receive the log.
"""

from __future__ import annotations

import enum
from collections import deque

from aspen.raft.core.types import ConfState, NodeId

__all__ = ["Inflights", "Progress", "ProgressState", "ProgressTracker", "VoteResult"]


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class VoteResult(enum.IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


class Inflights:
    """Sliding window of appends sent but not yet acknowledged (flow control).

    A deque used as a ring: appended at the right in index order, freed from the left.
    """

    def __init__(self, max_msgs: int, max_bytes: int = 0) -> None:
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes  # 0 = unlimited
        self._q: deque[tuple[int, int]] = deque()
        self.bytes = 0

    def add(self, index: int, nbytes: int) -> None:
        if self.full():
            raise AssertionError("cannot add to full inflights")
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        """Release every message whose last index is <= `index` (acknowledged)."""
        while self._q and self._q[0][0] <= index:
            _, nb = self._q.popleft()
            self.bytes -= nb

    def free_first_one(self) -> None:
        if self._q:
            _, nb = self._q.popleft()
            self.bytes -= nb

    def full(self) -> bool:
        return len(self._q) >= self.max_msgs or (self.max_bytes > 0 and self.bytes >= self.max_bytes)

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0


class Progress:
    """What the leader knows about one follower's log."""

    def __init__(self, match: int, next_: int, inflights: Inflights, is_learner: bool = False) -> None:
        self.match = match
        self.next = next_
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        #: Heard from since the last check-quorum round; new peers start active so a fresh
        #: leader (or a just-added node) does not immediately fail check-quorum.
        self.recent_active = True
        self.probe_sent = False
        self.inflights = inflights
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return f"Progress(match={self.match}, next={self.next}, state={self.state.name})"

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            # The peer will have at least the snapshot once it applies it.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def sent_entries(self, last_index: int, n_entries: int, nbytes: int) -> None:
        """Record an append carrying entries up to `last_index`."""
        if self.state == ProgressState.REPLICATE:
            if n_entries > 0:
                # Optimistic pipelining: assume it will be accepted.
                self.next = last_index + 1
                self.inflights.add(last_index, nbytes)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, n: int) -> bool:
        """The peer acknowledged up to `n`. Returns False for stale acks."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The peer rejected an append at prev index `rejected`; move `next` back. Returns False
        if the rejection is stale (a reordered or duplicated response)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # Probing sends one append at a time at next-1; anything else is stale.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True


class ProgressTracker:
    """Membership plus per-peer progress and the votes of the current election."""

    def __init__(self, max_inflight_msgs: int, max_inflight_bytes: int) -> None:
        self.max_inflight_msgs = max_inflight_msgs
        self.max_inflight_bytes = max_inflight_bytes
        self.voters: set[NodeId] = set()
        self.learners: set[NodeId] = set()
        self.progress: dict[NodeId, Progress] = {}
        self.votes: dict[NodeId, bool] = {}

    def new_inflights(self) -> Inflights:
        return Inflights(self.max_inflight_msgs, self.max_inflight_bytes)

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def set_conf(self, cs: ConfState, last_index: int) -> None:
        """Switch to membership `cs`, keeping progress of surviving members."""
        self.voters = set(cs.voters)
        self.learners = set(cs.learners)
        members = self.voters | self.learners
        for nid in list(self.progress):
            if nid not in members:
                del self.progress[nid]
        for nid in members:
            pr = self.progress.get(nid)
            if pr is None:
                # Next = last index (not +1) so the first probe carries our last entry.
                pr = Progress(0, max(last_index, 1), self.new_inflights())
                self.progress[nid] = pr
            pr.is_learner = nid in self.learners
        for nid in list(self.votes):
            if nid not in self.voters:
                del self.votes[nid]

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def committed(self) -> int:
        """Largest index replicated on a quorum of voters (by their `match`)."""
        if not self.voters:
            return 0
        matches = sorted(
            (self.progress[v].match if v in self.progress else 0 for v in self.voters), reverse=True
        )
        return matches[self.quorum() - 1]

    def vote_result(self, votes: dict[NodeId, bool]) -> VoteResult:
        if not self.voters:
            return VoteResult.WON  # an empty config wins trivially (etcd's convention)
        granted = sum(1 for v in self.voters if votes.get(v) is True)
        missing = sum(1 for v in self.voters if v not in votes)
        q = self.quorum()
        if granted >= q:
            return VoteResult.WON
        if granted + missing >= q:
            return VoteResult.PENDING
        return VoteResult.LOST

    def record_vote(self, nid: NodeId, granted: bool) -> None:
        # First answer wins: a duplicated/reordered response must not flip a vote.
        if nid not in self.votes:
            self.votes[nid] = granted

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, self.vote_result(self.votes)

    def reset_votes(self) -> None:
        self.votes = {}

    def quorum_active(self) -> bool:
        active = {nid: True for nid, pr in self.progress.items() if pr.recent_active and nid in self.voters}
        return self.vote_result(active) == VoteResult.WON
