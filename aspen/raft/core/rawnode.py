"""The driver-facing API: a thread-unsafe, sans-I/O wrapper around `Raft` producing `Ready`s.

Driver loop: `ready()` -> the steps `aspen.raft.core.plan.plan` returns for it, in order (early
sends, apply of entries committed earlier, persist, send, snapshot install, late apply; calling
`apply_conf_change` for CONF_CHANGE entries) -> `advance(ready)`.

Invariants:
* Every message in a Ready is safe to send once that Ready's hard state and entries are durable:
  messages are only ever emitted together with (or after) the state they depend on, because a
  Ready always carries *all* unstable entries and the current hard state.
* `committed_entries` only contains entries that were returned in an earlier Ready's `entries`
  and advanced (durable), except bootstrap entries, which are committed by construction.
* Messages to self are never emitted; a leader's own log counts toward commit only after
  `advance()` reports it durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aspen.raft.core.confchange import apply_conf_change, encode_conf_change
from aspen.raft.core.progress import ProgressState
from aspen.raft.core.raft import Config, ProposalDroppedError, Raft
from aspen.raft.core.storage import Storage
from aspen.raft.core.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    Ready,
    SoftState,
    StateRole,
)

__all__ = ["PeerProgress", "RawNode", "Status", "StepLocalMessageError"]

_LOCAL_TYPES = frozenset(
    {MessageType.HUP, MessageType.BEAT, MessageType.PROPOSE, MessageType.SNAP_STATUS, MessageType.UNREACHABLE}
)
_RESPONSE_TYPES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
    }
)
#: What a leader may send while its own fsync runs (see `Ready.early_messages`).
_EARLY_TYPES = frozenset({MessageType.APP, MessageType.HEARTBEAT})
#: What any node may send before its fsync: forwarded proposals promise nothing about our log.
_ALWAYS_EARLY = frozenset({MessageType.PROP_FORWARD, MessageType.PROP_DROPPED})


def _fold_commit_notices(msgs: list[Message]) -> list[Message]:
    """Fold each append without entries into another append to the same peer in the same batch.

    A leader announces a new commit index with an empty append, and the proposals of the same turn
    go to the same peer in an append of their own (before or after the announcement, as acks and
    proposals interleave). The empty one would cost a write, a read and an acknowledgement of its
    own: under 256 writers, a leader's empty appends were half of its appends. So the surviving
    append carries the higher of the two commit indexes. That is sound: any append may carry the
    leader's commit index (the follower commits no further than what the append makes it match),
    and an empty append does not move the peer's `next`, so it checks no more than the other one.
    Only appends of the same term are folded."""
    kept: list[Message | None] = []
    last_app: dict[NodeId, int] = {}  # peer -> position in `kept` of its latest append
    for m in msgs:
        if m.type == MessageType.APP:
            pos = last_app.get(m.to)
            prev = kept[pos] if pos is not None else None
            if pos is not None and prev is not None and prev.term == m.term:
                if not m.entries:  # the announcement rides on the earlier append
                    if m.commit > prev.commit:
                        kept[pos] = replace(prev, commit=m.commit)
                    continue
                if not prev.entries and prev.commit <= m.commit:
                    kept[pos] = None  # ...or on this one
            last_app[m.to] = len(kept)
        kept.append(m)
    if len(kept) == len(msgs) and None not in kept:
        return msgs
    return [m for m in kept if m is not None]


class StepLocalMessageError(ValueError):
    """A local-only message type arrived from the network."""


@dataclass(frozen=True, slots=True)
class PeerProgress:
    match: int
    next: int
    state: str


@dataclass(frozen=True, slots=True)
class Status:
    id: NodeId
    term: int
    vote: NodeId
    commit: int
    applied: int
    role: StateRole
    leader_id: NodeId
    conf_state: ConfState
    last_index: int
    snapshot_index: int
    lead_transferee: NodeId = NONE
    progress: dict[NodeId, PeerProgress] = field(default_factory=dict)


class RawNode:
    """One Raft node; see module docstring for the driver protocol."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.raft = Raft(config, storage)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # -- inputs -----------------------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(type=MessageType.HUP, frm=self.raft.id))

    def step(self, m: Message) -> None:
        """Feed a message received from the network."""
        if m.type in _LOCAL_TYPES:
            raise StepLocalMessageError(f"local message type {m.type.name} from the network")
        if m.type in _RESPONSE_TYPES and m.frm not in self.raft.prs.progress:
            return  # response from a node no longer (or not yet) a member: meaningless
        self.raft.step(m)

    def propose(self, data: bytes) -> None:
        """Append `data` to the log; raises ProposalDroppedError unless we are the leader."""
        self.raft.propose([Entry(term=0, index=0, type=EntryType.NORMAL, data=data)])

    def propose_or_forward(self, data: bytes, context: bytes) -> None:
        """Append `data` to the log when we lead; otherwise hand it to the leader we know (a
        PROP_DROPPED with `context` comes back if it does not append it). Raises
        ProposalDroppedError when there is no leader."""
        self.raft.forward_proposal(data, context)

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; raises ValueError if invalid for the current membership,
        ProposalDroppedError if another change is still pending."""
        apply_conf_change(self.raft.prs.conf_state(), cc)  # validate early
        self.raft.propose([Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))])

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read point; the answer is a ReadState with `ctx` in a Ready."""
        if self.raft.state != StateRole.LEADER and self.raft.lead == NONE:
            raise ProposalDroppedError("no leader to serve ReadIndex")
        self.raft.step(Message(type=MessageType.READ_INDEX, context=ctx))

    def transfer_leader(self, to: NodeId) -> None:
        self.raft.step(Message(type=MessageType.TRANSFER_LEADER, frm=to))

    def report_unreachable(self, nid: NodeId) -> None:
        self.raft.step(Message(type=MessageType.UNREACHABLE, frm=nid))

    def report_snapshot(self, nid: NodeId, ok: bool) -> None:
        self.raft.step(Message(type=MessageType.SNAP_STATUS, frm=nid, reject=not ok))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def bootstrap(self, voters: list[NodeId]) -> None:
        """Initialise a brand-new cluster member: one committed ADD_VOTER entry per voter at
        indexes 1..n, term 1. Every founding member must bootstrap with the same list."""
        if not voters:
            raise ValueError("bootstrap needs at least one voter")
        if self.raft.log.last_index() != 0 or self.raft.term != 0:
            raise ValueError("can only bootstrap an empty storage")
        ents = [
            Entry(
                term=1,
                index=k + 1,
                type=EntryType.CONF_CHANGE,
                data=encode_conf_change(ConfChange(type=ConfChangeType.ADD_VOTER, node_id=v)),
            )
            for k, v in enumerate(voters)
        ]
        self.raft.become_follower(1, NONE)
        self.raft.log.append(ents)
        self.raft.log.committed = len(ents)
        # Committed by fiat: applied in the same Ready they are persisted in.
        self.raft.log.unstable_apply_limit = len(ents)
        for v in voters:
            self.raft.apply_conf_change(ConfChange(type=ConfChangeType.ADD_VOTER, node_id=v))

    # -- outputs ----------------------------------------------------------------------------

    def has_ready(self) -> bool:
        r = self.raft
        if r.soft_state() != self._prev_soft:
            return True
        hs = r.hard_state()
        if hs != HardState() and hs != self._prev_hard:
            return True
        return bool(
            r.msgs
            or r.read_states
            or r.dropped_proposals
            or r.log.unstable.entries
            or r.log.has_pending_snapshot()
            or r.log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        r = self.raft
        ss = r.soft_state()
        hs = r.hard_state()
        msgs: list[Message] = _fold_commit_notices(r.msgs)
        early_types = _ALWAYS_EARLY
        if r.state == StateRole.LEADER and (hs.term, hs.vote) == (self._prev_hard.term, self._prev_hard.vote):
            early_types = _EARLY_TYPES | _ALWAYS_EARLY
        early = [m for m in msgs if m.type in early_types]
        if early:
            msgs = [m for m in msgs if m.type not in early_types]
        rd = Ready(
            soft_state=ss if ss != self._prev_soft else None,
            hard_state=hs if hs != self._prev_hard else None,
            read_states=tuple(r.read_states),
            dropped_proposals=tuple(r.dropped_proposals),
            entries=tuple(r.log.unstable_entries()),
            snapshot=r.log.unstable.snapshot,
            committed_entries=tuple(r.log.next_committed_entries()),
            messages=tuple(msgs),
            early_messages=tuple(early),
        )
        # Messages and read states are handed over exactly once.
        r.msgs = []
        r.read_states = []
        r.dropped_proposals = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver finished `rd`: its entries/snapshot are durable and its committed entries
        applied."""
        r = self.raft
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            r.on_snapshot_persisted(rd.snapshot.meta.index)
            if r.log.applied < rd.snapshot.meta.index:
                r.log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            r.on_persisted(last.index, last.term)
        if rd.committed_entries:
            r.log.applied_to(rd.committed_entries[-1].index)
            if r.log.applied >= r.log.unstable_apply_limit:
                r.log.unstable_apply_limit = 0
            # Pending ReadIndex/conf change bookkeeping depends on applied; nothing else to do.

    def status(self) -> Status:
        r = self.raft
        progress: dict[NodeId, PeerProgress] = {}
        if r.state == StateRole.LEADER:
            progress = {
                nid: PeerProgress(match=pr.match, next=pr.next, state=ProgressState(pr.state).name)
                for nid, pr in sorted(r.prs.progress.items())
            }
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=r.log.committed,
            applied=r.log.applied,
            role=r.state,
            leader_id=r.lead,
            conf_state=r.prs.conf_state(),
            last_index=r.log.last_index(),
            snapshot_index=r.log.snapshot().meta.index,
            lead_transferee=r.lead_transferee,
            progress=progress,
        )

    @property
    def soft_state(self) -> SoftState:
        return self.raft.soft_state()
