"""The Raft state machine (sans-I/O, deterministic), modelled on etcd-io/raft.

The core never performs I/O, reads a clock or uses global randomness: time is `tick()`, input is
`step(msg)`/`propose(...)`, output is accumulated in `msgs`/`read_states` and the log's unstable
part, which `RawNode` packages into a `Ready`.

Safety invariants this module maintains (Raft paper §5, etcd):
* At most one vote per term: `vote` is only set when it is NONE (or already the same candidate)
  and is persisted (HardState in the Ready) before the VOTE_RESP leaves the node.
* A vote is granted only to a candidate whose log is at least as up to date as ours.
* A leader only commits by counting replicas of entries from its *current* term (§5.4.2); earlier
  entries are committed indirectly.
* The leader's own log only counts toward a quorum for entries the driver reported durable
  (`on_persisted`), so nothing is committed that exists in memory only.
* Pre-vote never changes anyone's term; with check-quorum, a node that heard from a live leader
  within the election timeout ignores (pre-)vote requests (the leader lease), so a partitioned
  node rejoining cannot disrupt a stable leader.
* ReadIndex is only served once the leader has committed an entry of its term (so its commit index
  is at least that of any earlier leader) and a quorum confirmed its leadership after the read.
* At most one membership change is pending (proposed but not applied) at a time.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from aspen.raft.core.confchange import apply_conf_change
from aspen.raft.core.log import RaftLog
from aspen.raft.core.progress import ProgressState, ProgressTracker, VoteResult
from aspen.raft.core.storage import CompactedError, Storage, entry_size
from aspen.raft.core.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadState,
    Snapshot,
    SoftState,
    StateRole,
)

__all__ = ["CAMPAIGN_TRANSFER", "Config", "ProposalDroppedError", "Raft"]

#: Context of a VOTE sent because of TIMEOUT_NOW: voters must not apply the leader lease.
CAMPAIGN_TRANSFER = b"CampaignTransfer"

MT = MessageType

_VOTE_RESP = {MT.VOTE: MT.VOTE_RESP, MT.PRE_VOTE: MT.PRE_VOTE_RESP}


class ProposalDroppedError(Exception):
    """A proposal (or read) could not be accepted: no leader, not leader, or transfer pending."""


class _Campaign(enum.Enum):
    PRE_ELECTION = 0
    ELECTION = 1
    TRANSFER = 2


@dataclass
class Config:
    """Static configuration of one Raft node."""

    id: NodeId
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 32 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    #: Last applied index when restarting (the state machine is already at it).
    applied: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("node id must not be 0")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be > 0")


@dataclass
class _ReadRequest:
    index: int
    req: Message
    acks: set[NodeId]


class _ReadOnly:
    """Pending ReadIndex requests awaiting a heartbeat quorum, in arrival order."""

    def __init__(self) -> None:
        self.pending: dict[bytes, _ReadRequest] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        if m.context in self.pending:
            return  # duplicate context: the first request's answer serves both
        self.pending[m.context] = _ReadRequest(index, m, set())
        self.queue.append(m.context)

    def recv_ack(self, nid: NodeId, ctx: bytes) -> set[NodeId] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(nid)
        return rs.acks

    def advance(self, ctx: bytes) -> list[_ReadRequest]:
        """Release `ctx` and every request queued before it: a quorum ack of a later heartbeat
        also confirms leadership for the earlier ones."""
        if ctx not in self.pending:
            return []
        k = self.queue.index(ctx) + 1
        released = [self.pending.pop(c) for c in self.queue[:k]]
        del self.queue[:k]
        return released


class Raft:
    """One node's Raft state. Driven through `RawNode`."""

    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.log = RaftLog(storage)
        self.max_msg_size = config.max_size_per_msg
        self.prs = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.rng = config.rng

        self.term = 0
        self.vote: NodeId = NONE
        self.lead: NodeId = NONE
        self.state = StateRole.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        #: Contexts of our forwarded proposals the receiver refused (PROP_DROPPED), for the driver.
        self.dropped_proposals: list[bytes] = []
        self.read_only = _ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.lead_transferee: NodeId = NONE
        #: Index of the last conf change proposed; a new one is refused until it is applied.
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout

        hs, cs = storage.initial_state()
        self.prs.set_conf(cs, self.log.last_index())
        self.is_learner = self.id in self.prs.learners
        if hs != HardState():
            self._load_state(hs)
        if config.applied > 0:
            self.log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    # -- state ------------------------------------------------------------------------------

    def _load_state(self, hs: HardState) -> None:
        if hs.commit < self.log.committed or hs.commit > self.log.last_index():
            raise AssertionError(
                f"hard state commit {hs.commit} outside [{self.log.committed}, {self.log.last_index()}]"
            )
        self.log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(leader_id=self.lead, role=self.state)

    def promotable(self) -> bool:
        """May this node campaign? Only tracked voters without a pending snapshot."""
        pr = self.prs.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.log.has_pending_snapshot()

    def _reset_randomized_election_timeout(self) -> None:
        # Randomised in [et, 2*et) so that split votes resolve quickly (Raft §5.2).
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.prs.reset_votes()
        last = self.log.last_index()
        for nid, pr in self.prs.progress.items():
            pr.inflights.reset()
            pr.state = ProgressState.PROBE
            pr.pending_snapshot = 0
            pr.probe_sent = False
            pr.recent_active = True
            pr.next = last + 1
            # Our own log counts only as far as it is durable.
            pr.match = self.log.stable_last_index() if nid == self.id else 0
        self.pending_conf_index = 0
        self.read_only = _ReadOnly()
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: NodeId) -> None:
        self._reset(term)
        self.lead = lead
        self.state = StateRole.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.state == StateRole.LEADER:
            raise AssertionError("leader cannot become pre-candidate")
        # Pre-vote changes neither term nor vote: a failed pre-campaign leaves no trace.
        self.prs.reset_votes()
        self.lead = NONE
        self.state = StateRole.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.state == StateRole.LEADER:
            raise AssertionError("leader cannot become candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateRole.CANDIDATE

    def become_leader(self) -> None:
        if self.state == StateRole.FOLLOWER:
            raise AssertionError("follower cannot become leader")
        self._reset(self.term)
        self.lead = self.id
        self.state = StateRole.LEADER
        self.prs.progress[self.id].become_replicate()
        self.prs.progress[self.id].match = self.log.stable_last_index()
        # Conservatively assume the log holds an unapplied conf change.
        self.pending_conf_index = self.log.last_index()
        # The empty entry of our term lets us commit (and thereby learn the commit index of)
        # everything earlier (§5.4.2, §8).
        self._append_entries([Entry(term=0, index=0)])

    # -- sending ----------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        if m.to == self.id:
            raise AssertionError(f"message to self: {m}")
        self.msgs.append(m)

    def _msg(self, typ: MessageType, to: NodeId, **kw: object) -> Message:
        kw.setdefault("term", self.term)
        kw.setdefault("frm", self.id)
        return Message(type=typ, to=to, **kw)  # type: ignore[arg-type]

    def send_append(self, to: NodeId) -> None:
        self.maybe_send_append(to, send_if_empty=True)

    def maybe_send_append(self, to: NodeId, send_if_empty: bool) -> bool:
        """Send entries from `next` to `to` (or a snapshot if they are compacted)."""
        pr = self.prs.progress[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        try:
            prev_term = self.log.term(prev)
            ents = self.log.entries(pr.next, self.max_msg_size)
        except CompactedError:
            # The peer needs entries we no longer have: only a snapshot can catch it up.
            return self._maybe_send_snapshot(to)
        if not ents and not send_if_empty:
            return False
        self._send(
            self._msg(
                MT.APP, to, index=prev, log_term=prev_term, entries=tuple(ents), commit=self.log.committed
            )
        )
        if ents:
            pr.sent_entries(ents[-1].index, len(ents), sum(entry_size(e) for e in ents))
        else:
            pr.sent_entries(prev, 0, 0)
        return True

    def _maybe_send_snapshot(self, to: NodeId) -> bool:
        pr = self.prs.progress[to]
        if not pr.recent_active:
            return False  # don't ship a snapshot to a peer that seems down
        snap = self.log.snapshot()
        if snap.is_empty():
            raise AssertionError("need non-empty snapshot")
        self._send(self._msg(MT.SNAP, to, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        return True

    def bcast_append(self) -> None:
        for nid in sorted(self.prs.progress):
            if nid != self.id:
                self.send_append(nid)

    def bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            # A periodic round carries the newest pending ReadIndex context (as etcd's does): if
            # that round's own heartbeats or acks were lost, this one confirms it and all before it.
            ctx = self.read_only.queue[-1] if self.read_only.queue else b""
        for nid in sorted(self.prs.progress):
            if nid == self.id:
                continue
            pr = self.prs.progress[nid]
            # Never tell a follower to commit beyond what it is known to hold.
            commit = min(pr.match, self.log.committed)
            self._send(self._msg(MT.HEARTBEAT, nid, commit=commit, context=ctx))

    def _append_entries(self, ents: list[Entry]) -> None:
        li = self.log.last_index()
        stamped = [
            Entry(term=self.term, index=li + 1 + k, type=e.type, data=e.data) for k, e in enumerate(ents)
        ]
        self.log.append(stamped)
        # Our own match advances in on_persisted(), once the driver made these durable.

    def maybe_commit(self) -> bool:
        return self.log.maybe_commit(self.prs.committed(), self.term)

    def on_persisted(self, index: int, term: int) -> None:
        """The driver made entries up to (index, term) durable."""
        self.log.stable_to(index, term)
        if self.state != StateRole.LEADER or not self.log.match_term(index, term):
            return
        pr = self.prs.progress.get(self.id)
        if pr is None:
            return
        if pr.maybe_update(min(index, self.log.stable_last_index())) and self.maybe_commit():
            self._on_commit_advanced()

    def _on_commit_advanced(self) -> None:
        self._release_pending_read_index_messages()
        self.bcast_append()

    def on_snapshot_persisted(self, index: int) -> None:
        self.log.stable_snap_to(index)

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> None:
        if self.state == StateRole.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.hup(_Campaign.PRE_ELECTION if self.pre_vote else _Campaign.ELECTION)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self._check_quorum()
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateRole.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state != StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat()

    def _check_quorum(self) -> None:
        # Mark ourselves active: we trivially hear from ourselves.
        me = self.prs.progress.get(self.id)
        if me is not None:
            me.recent_active = True
        if not self.prs.quorum_active():
            # Can't reach a quorum: stop acting as leader so clients go elsewhere and our lease
            # expires before a new leader could be elected.
            self.become_follower(self.term, NONE)
        for nid, pr in self.prs.progress.items():
            if nid != self.id:
                pr.recent_active = False

    # -- elections --------------------------------------------------------------------------

    def _has_unapplied_conf_changes(self) -> bool:
        if self.log.applied >= self.log.committed:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        hi = self.log.committed + 1
        while lo < hi:
            try:
                ents = self.log.slice(lo, hi, 1 << 20)
            except CompactedError:
                return False
            if not ents:
                return False
            if any(e.type == EntryType.CONF_CHANGE for e in ents):
                return True
            lo = ents[-1].index + 1
        return False

    def hup(self, t: _Campaign) -> None:
        if self.state == StateRole.LEADER or not self.promotable():
            return
        # Campaigning with a committed-but-unapplied conf change could use a stale membership.
        if self._has_unapplied_conf_changes():
            return
        self.campaign(t)

    def campaign(self, t: _Campaign) -> None:
        if not self.promotable():
            return
        if t == _Campaign.PRE_ELECTION:
            self.become_pre_candidate()
            vote_type = MT.PRE_VOTE
            term = self.term + 1  # the term we would campaign in; ours stays unchanged
        else:
            self.become_candidate()
            vote_type = MT.VOTE
            term = self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # Single voter: won outright.
            if t == _Campaign.PRE_ELECTION:
                self.campaign(_Campaign.ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if t == _Campaign.TRANSFER else b""
        for nid in sorted(self.prs.voters):
            if nid == self.id:
                continue
            self._send(
                self._msg(
                    vote_type,
                    nid,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=ctx,
                )
            )

    def _poll(self, nid: NodeId, granted: bool) -> VoteResult:
        self.prs.record_vote(nid, granted)
        return self.prs.tally_votes()[2]

    # -- message handling -------------------------------------------------------------------

    def step(self, m: Message) -> None:
        # 1. Term handling.
        if m.term == 0:
            pass  # local message (or a forwarded READ_INDEX or proposal, which carry no term)
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum and self.lead != NONE and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # Leader lease: we heard from a live leader recently; a (pre-)vote from a
                    # node that e.g. was partitioned must not depose it (and we don't even bump
                    # our term).
                    return
            if m.type == MT.PRE_VOTE:
                pass  # never change our term because of a pre-vote
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                pass  # a granted pre-vote carries the future term; we bump it when campaigning
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if m.type in (MT.HEARTBEAT, MT.APP):
                # Tell a stale leader our term so it steps down (Raft paper behaviour). etcd only
                # does this with check-quorum/pre-vote, relying otherwise on our VOTE requests to
                # spread the higher term - but those only go to the voters of *our* (possibly
                # stale) config, so the leader might never learn of it and we could never
                # rejoin: a liveness bug the simulator found (seed 988, membership changes).
                self._send(self._msg(MT.APP_RESP, m.frm))
            elif m.type == MT.PRE_VOTE:
                # Reject with our term so the pre-candidate learns it is behind.
                self._send(self._msg(MT.PRE_VOTE_RESP, m.frm, reject=True))
            return

        # 2. Type handling common to all roles.
        if m.type == MT.HUP:
            self.hup(_Campaign.PRE_ELECTION if self.pre_vote else _Campaign.ELECTION)
        elif m.type == MT.PROP_FORWARD:
            self._step_forwarded_proposal(m)
        elif m.type == MT.PROP_DROPPED:
            self.dropped_proposals.append(m.context)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            can_vote = (
                self.vote == m.frm
                or (self.vote == NONE and self.lead == NONE)
                or (m.type == MT.PRE_VOTE and m.term > self.term)
            )
            if can_vote and self.log.is_up_to_date(m.index, m.log_term):
                # Respond with the message's term: for a pre-vote it is in our future, and the
                # pre-candidate must recognise the response as belonging to its campaign.
                self._send(self._msg(_VOTE_RESP[m.type], m.frm, term=m.term))
                if m.type == MT.VOTE:
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                self._send(self._msg(_VOTE_RESP[m.type], m.frm, reject=True))
        elif self.state == StateRole.LEADER:
            self._step_leader(m)
        elif self.state in (StateRole.CANDIDATE, StateRole.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _step_leader(self, m: Message) -> None:
        if m.type == MT.BEAT:
            self.bcast_heartbeat()
            return
        if m.type == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        pr = self.prs.progress.get(m.frm)
        if pr is None:
            return
        if m.type == MT.APP_RESP:
            pr.recent_active = True
            if m.reject:
                next_probe = m.reject_hint
                if m.log_term_hint > 0:
                    # Skip every leader entry whose term is above the follower's term at the
                    # hint: none of them can match.
                    next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term_hint)
                if pr.maybe_decr_to(m.index, next_probe):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self.send_append(m.frm)
            else:
                old_paused = pr.is_paused()
                if pr.maybe_update(m.index):
                    if pr.state == ProgressState.PROBE:
                        pr.become_replicate()
                    elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
                        # The follower caught up past the snapshot: resume normal replication.
                        pr.become_probe()
                        pr.become_replicate()
                    elif pr.state == ProgressState.REPLICATE:
                        pr.inflights.free_le(m.index)
                    if self.maybe_commit():
                        self._on_commit_advanced()
                    elif old_paused:
                        self.send_append(m.frm)
                    # Fill the window (several messages if max_size_per_msg split the tail).
                    while self.maybe_send_append(m.frm, send_if_empty=False):
                        pass
                    if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                        self._send(self._msg(MT.TIMEOUT_NOW, m.frm))
        elif m.type == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                # Responses may have been lost; open the window by one so we retry.
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self.send_append(m.frm)
            if not m.context:
                return
            acks = self.read_only.recv_ack(m.frm, m.context)
            if acks is None:
                return
            if self.prs.vote_result(dict.fromkeys(acks, True)) != VoteResult.WON:
                return
            for rs in self.read_only.advance(m.context):
                self._respond_read_index(rs.req, rs.index)
        elif m.type == MT.SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
                pr.become_probe()
            else:
                pr.become_probe()
            # Wait for an APP_RESP/HEARTBEAT_RESP before probing again.
            pr.probe_sent = True
        elif m.type == MT.UNREACHABLE:
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
        elif m.type == MT.TRANSFER_LEADER:
            if pr.is_learner:
                return
            transferee = m.frm
            if self.lead_transferee != NONE:
                if self.lead_transferee == transferee:
                    return
                self.abort_leader_transfer()
            if transferee == self.id:
                return
            # The transfer must complete within one election timeout.
            self.election_elapsed = 0
            self.lead_transferee = transferee
            if pr.match == self.log.last_index():
                self._send(self._msg(MT.TIMEOUT_NOW, transferee))
            else:
                self.send_append(transferee)

    def _leader_read_index(self, m: Message) -> None:
        if not self._committed_entry_in_current_term():
            # Our commit index may lag the previous leader's; wait for our empty entry.
            self.pending_read_index_messages.append(m)
            return
        self._send_read_index_response(m)

    def _send_read_index_response(self, m: Message) -> None:
        if self.prs.is_singleton():
            self._respond_read_index(m, self.log.committed)
            return
        self.read_only.add_request(self.log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self.bcast_heartbeat(m.context)

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.frm in (NONE, self.id):
            self.read_states.append(ReadState(index=index, context=req.context))
        else:
            self._send(self._msg(MT.READ_INDEX_RESP, req.frm, index=index, context=req.context))

    def _committed_entry_in_current_term(self) -> bool:
        return self.log.zero_term_on_err(self.log.committed) == self.term

    def _release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self._committed_entry_in_current_term():
            return
        pending, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in pending:
            self._send_read_index_response(m)

    def _step_candidate(self, m: Message) -> None:
        my_resp = MT.PRE_VOTE_RESP if self.state == StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        if m.type == MT.APP:
            self.become_follower(m.term, m.frm)
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif m.type == MT.SNAP:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif m.type == my_resp:
            res = self._poll(m.frm, not m.reject)
            if res == VoteResult.WON:
                if self.state == StateRole.PRE_CANDIDATE:
                    self.campaign(_Campaign.ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        if m.type == MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif m.type == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif m.type == MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self._send(Message(type=m.type, to=self.lead, frm=m.frm, term=m.term))
        elif m.type == MT.TIMEOUT_NOW:
            # The leader chose us: campaign at once, skipping pre-vote and the lease.
            self.hup(_Campaign.TRANSFER)
        elif m.type == MT.READ_INDEX:
            if self.lead == NONE:
                return  # dropped; the requester retries after its own timeout
            frm = m.frm if m.frm != NONE else self.id
            self._send(Message(type=MT.READ_INDEX, to=self.lead, frm=frm, context=m.context))
        elif m.type == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, context=m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            # Everything up to our commit already matches; tell the leader where we are.
            self._send(self._msg(MT.APP_RESP, m.frm, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, list(m.entries))
        if last_new is not None:
            self._send(self._msg(MT.APP_RESP, m.frm, index=last_new))
            return
        # Fast backtracking: hint the largest index whose term is <= the leader's prev term.
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            self._msg(
                MT.APP_RESP,
                m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term_hint=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        # m.commit <= what we acknowledged as durable, so it is within our log.
        self.log.commit_to(m.commit)
        self._send(self._msg(MT.HEARTBEAT_RESP, m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None or snap.is_empty():
            return
        if self.restore(snap):
            self._send(self._msg(MT.APP_RESP, m.frm, index=self.log.last_index()))
        else:
            self._send(self._msg(MT.APP_RESP, m.frm, index=self.log.committed))

    def restore(self, s: Snapshot) -> bool:
        """Install `s` if it is newer than our commit index. Returns True if installed."""
        if s.meta.index <= self.log.committed:
            return False
        if self.state != StateRole.FOLLOWER:
            # Only followers of the sender's term receive snapshots; be defensive.
            self.become_follower(self.term + 1, NONE)
            return False
        # Unlike etcd we accept a snapshot whose config does not include us: a node added after
        # the leader's latest snapshot would otherwise never catch up (it learns its own
        # membership from the log entries that follow the snapshot).
        cs = s.meta.conf_state
        if self.log.match_term(s.meta.index, s.meta.term):
            # We already have the snapshot's last entry: just fast-forward the commit index.
            self.log.commit_to(s.meta.index)
            return False
        self.log.restore(s)
        self.prs = self._fresh_tracker()
        self._switch_to_config(cs)
        return True

    def _fresh_tracker(self) -> ProgressTracker:
        return ProgressTracker(self.prs.max_inflight_msgs, self.prs.max_inflight_bytes)

    def _step_forwarded_proposal(self, m: Message) -> None:
        if self.state == StateRole.LEADER and all(e.type == EntryType.NORMAL for e in m.entries):
            try:
                self.propose(list(m.entries))
                return
            except ProposalDroppedError:
                pass
        # Not ours to order: say so at once (one hop, never re-forwarded), so the proposer's callers
        # hear NOT_LEADER and retry instead of waiting out their deadline.
        self._send(Message(type=MT.PROP_DROPPED, to=m.frm, frm=self.id, context=m.context))

    # -- client operations ------------------------------------------------------------------

    def forward_proposal(self, data: bytes, context: bytes) -> None:
        """A follower hands a normal entry to the leader it knows; `context` names it in a
        PROP_DROPPED answer. Raises ProposalDroppedError when there is no leader to hand it to."""
        entry = Entry(term=0, index=0, type=EntryType.NORMAL, data=data)
        if self.state == StateRole.LEADER:
            self.propose([entry])
            return
        if self.lead == NONE:
            raise ProposalDroppedError("no leader to forward the proposal to")
        self._send(
            Message(type=MT.PROP_FORWARD, to=self.lead, frm=self.id, entries=(entry,), context=context)
        )

    def propose(self, ents: list[Entry]) -> None:
        if self.state != StateRole.LEADER:
            raise ProposalDroppedError("not the leader")
        if self.id not in self.prs.progress:
            raise ProposalDroppedError("leader was removed from the cluster")
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership transfer to {self.lead_transferee} in progress")
        for e in ents:
            if e.type == EntryType.CONF_CHANGE and self.pending_conf_index > self.log.applied:
                raise ProposalDroppedError("a membership change is already pending")
        li = self.log.last_index()
        for k, e in enumerate(ents):
            if e.type == EntryType.CONF_CHANGE:
                self.pending_conf_index = li + 1 + k
        self._append_entries(ents)
        self.bcast_append()

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (called by the driver when it applies the entry)."""
        try:
            cs = apply_conf_change(self.prs.conf_state(), cc)
        except ValueError:
            # An invalid change reached the log (e.g. proposed against another config); every
            # node ignores it identically.
            return self.prs.conf_state()
        return self._switch_to_config(cs)

    def _switch_to_config(self, cs: ConfState) -> ConfState:
        self.prs.set_conf(cs, self.log.last_index())
        pr = self.prs.progress.get(self.id)
        self.is_learner = pr is not None and pr.is_learner
        if pr is not None and self.state == StateRole.LEADER and pr.match == 0:
            pr.become_replicate()
            pr.match = self.log.stable_last_index()
        if (pr is None or self.is_learner) and self.state == StateRole.LEADER:
            # Removed (or demoted) leader: stop leading; the rest elect a new leader.
            self.become_follower(self.term, NONE)
            return cs
        if self.state != StateRole.LEADER or not cs.voters:
            return cs
        # The quorum may have shrunk: maybe we can commit now.
        if self.maybe_commit():
            self._on_commit_advanced()
        else:
            for nid in sorted(self.prs.progress):
                if nid != self.id:
                    self.maybe_send_append(nid, send_if_empty=False)
        if self.lead_transferee != NONE and self.lead_transferee not in self.prs.voters:
            self.abort_leader_transfer()
        return cs
