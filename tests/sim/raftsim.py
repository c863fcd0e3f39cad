"""Deterministic whole-cluster simulator for the Raft core.

A seed fully determines a run: one `random.Random(seed)` drives the fault schedule, the network
(delay, drop, duplicate, reorder, partitions) and every node's election jitter. Nodes are
`RawNode`s driven exactly like the real driver (persist -> send -> apply -> advance); each node's
"disk" is its `MemoryStorage`, which only ever receives what a Ready asked to persist, and a crash
throws away everything else (the RawNode, its unstable log, the state machine) and rebuilds the
node from the disk the way the real driver recovers from its WAL.

Faults: message drop, delay, duplication, reordering (per-link FIFO otherwise), partitions and
heals, crash/restart, log compaction + snapshots, leadership transfers and (in some seeds)
membership changes (add learner/voter, promote, remove) with spare node ids.

Invariants checked after every step (raising `SafetyViolation`):
* election safety: at most one leader per term;
* log matching: one (index, term) identifies one entry (same data) with one predecessor term -
  checked for every entry as it is persisted by any node, plus a full pairwise comparison of all
  logs every 100 steps and at the end of each phase;
* leader completeness: a new leader holds the highest entry ever committed;
* durability: the highest committed entry is on the disks of a quorum of voters (crashes included;
  checked while membership is unchanged - afterwards a new majority may legitimately lag);
* state-machine safety: no two nodes apply different entries at one index, and applies are gapless;
* ReadIndex: a ReadState's index is >= everything applied anywhere when the read was issued;
* durability of applies: a node only applies entries that are on its own disk.

After the fault phase everything is healed and restarted; a leader must emerge and new proposals
must be applied by every live member (`LivenessFailure` otherwise).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from raft_unsafe import allow_unsafe_commit_previous_term

from aspen.raft.core import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Ready,
    Snapshot,
    StateRole,
    conf_state_from,
    decode_conf_change,
)
from aspen.raft.core.plan import (
    Apply,
    InstallSnapshot,
    Notices,
    Persist,
    PersistSnapshot,
    Send,
    SendEarly,
    Step,
    plan,
)

MT = MessageType

#: How a Ready is turned into steps: the driver's own `plan` unless a test swaps in a wrong one.
Planner = Callable[[Ready, HardState], tuple[Step, ...]]


class SafetyViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    pass


@dataclass
class SimParams:
    n_nodes: int = 3
    fault_steps: int = 2000
    drop: float = 0.05
    dup: float = 0.02
    max_delay: int = 3
    reorder: float = 0.2
    crash_rate: float = 0.004
    #: Chance that a node crashes before a write reaches its disk (losing it, as kill -9 does).
    crash_mid_fsync: float = 0.002
    partition_rate: float = 0.004
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    compact_rate: float = 0.01
    pre_vote: bool = True
    check_quorum: bool = True
    unsafe_commit_previous_term: bool = False
    #: Extra node ids, not members initially, that membership changes may add.
    spare: int = 0
    conf_change_rate: float = 0.0

    @staticmethod
    def for_seed(rng: random.Random) -> SimParams:
        """A quarter of the seeds use the harsh fault profile, the rest a random mix."""
        return SimParams.harsh(rng) if rng.random() < 0.25 else SimParams.random(rng)

    @staticmethod
    def harsh(rng: random.Random) -> SimParams:
        """Aggressive faults: frequent crashes and partitions, one entry per message."""
        return SimParams(
            n_nodes=rng.choice([3, 5]),
            drop=rng.choice([0.05, 0.2]),
            dup=0.05,
            max_delay=rng.choice([1, 4]),
            reorder=rng.choice([0.0, 0.3]),
            crash_rate=rng.choice([0.01, 0.03]),
            partition_rate=rng.choice([0.01, 0.03]),
            max_size_per_msg=1,
            max_inflight_msgs=rng.choice([1, 2]),
            compact_rate=0.0,
            pre_vote=rng.random() < 0.5,
            check_quorum=rng.random() < 0.5,
        )

    @staticmethod
    def random(rng: random.Random) -> SimParams:
        return SimParams(
            n_nodes=rng.choice([3, 3, 5, 5, 4]),
            drop=rng.choice([0.0, 0.02, 0.1, 0.2]),
            dup=rng.choice([0.0, 0.02, 0.1]),
            max_delay=rng.choice([1, 2, 4, 8]),
            reorder=rng.choice([0.0, 0.05, 0.3]),
            crash_rate=rng.choice([0.0, 0.003, 0.01]),
            partition_rate=rng.choice([0.0, 0.003, 0.01]),
            max_size_per_msg=rng.choice([1, 64, 1 << 20]),
            max_inflight_msgs=rng.choice([1, 4, 256]),
            compact_rate=rng.choice([0.0, 0.01, 0.05]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            spare=rng.choice([0, 1, 2]),
            conf_change_rate=rng.choice([0.0, 0.0, 0.005, 0.02]),
        )


@dataclass
class SimNode:
    id: int
    disk: MemoryStorage
    node: RawNode
    alive: bool = True
    incarnation: int = 0
    applied: int = 0
    sm: list[tuple[int, bytes]] = field(default_factory=list)
    conf: ConfState = field(default_factory=ConfState)
    #: The hard state on "disk": like the driver's WAL, it skips commit-only changes (see `plan`);
    #: `disk.hard_state` is the in-memory one the RawNode reads.
    saved_hs: HardState = field(default_factory=HardState)
    was_leader_term: int = 0


def _encode_sm(sm: list[tuple[int, bytes]]) -> bytes:
    packed: bytes = msgpack.packb([[list(x) for x in sm]], use_bin_type=True)
    return packed


def _decode_sm(data: bytes) -> list[tuple[int, bytes]]:
    if not data:
        return []
    obj = msgpack.unpackb(data, raw=False)
    return [(int(i), bytes(d)) for i, d in obj[0]]


class Sim:
    def __init__(self, seed: int, params: SimParams | None = None, planner: Planner = plan) -> None:
        self.seed = seed
        self.planner = planner
        self.rng = random.Random(seed)
        self.p = params if params is not None else SimParams.for_seed(self.rng)
        self.now = 0
        self.steps = 0
        self.seq = 0
        self.ids = list(range(1, self.p.n_nodes + 1))
        self.all_ids = list(range(1, self.p.n_nodes + self.p.spare + 1))
        self.removed: set[int] = set()
        #: Once membership changed, "a quorum of the founding voters" is no longer the right
        #: durability check (a new majority may legitimately lag); leader completeness and
        #: state-machine safety still cover it.
        self.conf_changed = False
        self.nodes: dict[int, SimNode] = {}
        # (deliver_at, seq, msg, sender incarnation)
        self.net: list[tuple[int, int, Message, int]] = []
        self.link_last: dict[tuple[int, int], int] = {}
        self.reports: list[tuple[int, int, int, bool]] = []
        self.groups: dict[int, int] = {}  # node -> partition group; empty = fully connected
        self.leaders: dict[int, int] = {}
        self.entry_map: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        self.applied_map: dict[int, tuple[int, int, bytes]] = {}
        self.max_applied = 0
        self.committed_point = (0, 0)  # highest (index, term) known committed
        self.next_value = 0
        self.reads: dict[bytes, int] = {}
        self.proposed: set[bytes] = set()
        #: No crash before a write while founding members persist their bootstrap entries: those
        #: are committed by fiat, on the assumption that every founder keeps them.
        self.bootstrapping = True
        for nid in self.all_ids:
            disk = MemoryStorage()
            rn = self._new_rawnode(nid, 0, disk)
            if nid in self.ids:
                rn.bootstrap(self.ids)
            self.nodes[nid] = SimNode(nid, disk, rn)
        for nid in self.all_ids:
            self._process(self.nodes[nid])
        self.bootstrapping = False

    # -- plumbing ---------------------------------------------------------------------------

    def _config(self, nid: int, applied: int) -> Config:
        return Config(
            id=nid,
            election_tick=10,
            heartbeat_tick=1,
            max_size_per_msg=self.p.max_size_per_msg,
            max_inflight_msgs=self.p.max_inflight_msgs,
            pre_vote=self.p.pre_vote,
            check_quorum=self.p.check_quorum,
            applied=applied,
            rng=random.Random(self.rng.getrandbits(64)),
        )

    def _new_rawnode(self, nid: int, applied: int, disk: MemoryStorage) -> RawNode:
        rn = RawNode(self._config(nid, applied), disk)
        if self.p.unsafe_commit_previous_term:
            allow_unsafe_commit_previous_term(rn.raft)
        return rn

    def fail(self, what: str) -> SafetyViolation:
        return SafetyViolation(f"seed={self.seed} step={self.steps}: {what}")

    def connected(self, a: int, b: int) -> bool:
        return self.groups.get(a, 0) == self.groups.get(b, 0)

    def _send(self, sn: SimNode, m: Message) -> None:
        if self.rng.random() < self.p.drop:
            self._snap_report(sn.id, sn.incarnation, m, ok=False)
            return
        copies = 2 if self.rng.random() < self.p.dup else 1
        for _ in range(copies):
            self.seq += 1
            at = self.now + self.rng.randint(0, self.p.max_delay)
            link = (m.frm, m.to)
            if self.rng.random() >= self.p.reorder:
                # Mostly FIFO per link, like a real connection; `reorder` lets messages overtake.
                at = max(at, self.link_last.get(link, 0))
                self.link_last[link] = at
            self.net.append((at, self.seq, m, sn.incarnation))

    def _snap_report(self, frm: int, inc: int, m: Message, ok: bool) -> None:
        if m.type != MT.SNAP:
            return
        # Deferred: we may be inside the sender's Ready loop (between ready() and advance()).
        self.reports.append((frm, inc, m.to, ok))

    def flush_reports(self) -> None:
        while self.reports:
            frm, inc, to, ok = self.reports.pop(0)
            sender = self.nodes[frm]
            if sender.alive and sender.incarnation == inc:
                sender.node.report_snapshot(to, ok)
                self._process(sender)

    def _process(self, sn: SimNode) -> None:
        """Drive one node's Ready loop: the steps of `self.planner` (the driver's `plan`), then
        advance. A crash may strike before any write, losing what was not persisted yet."""
        if not sn.alive:
            return
        rn = sn.node
        while rn.has_ready():
            rd = rn.ready()
            for step in self.planner(rd, sn.saved_hs):
                if isinstance(step, SendEarly | Notices | Send):
                    for m in step.messages:
                        if m.to == sn.id:
                            raise self.fail(f"message to self {m}")
                        self._send(sn, m)
                elif isinstance(step, PersistSnapshot):
                    sn.disk.apply_snapshot(step.snapshot)
                elif isinstance(step, Persist):
                    crash = step.durable and not self.bootstrapping
                    if crash and self.rng.random() < self.p.crash_mid_fsync:
                        self.crash(sn)  # killed before the fsync completed: this write is lost
                        return
                    if step.hard_state is not None:
                        sn.disk.set_hard_state(step.hard_state)
                        self._note_commit(sn, step.hard_state.commit)
                    if step.durable:
                        if step.entries:
                            self._check_entries(sn, list(step.entries))
                            sn.disk.append(step.entries)
                        sn.saved_hs = sn.disk.hard_state
                elif isinstance(step, InstallSnapshot):
                    s = step.snapshot
                    sn.sm = _decode_sm(s.data)
                    sn.applied = s.meta.index
                    sn.conf = s.meta.conf_state
                elif isinstance(step, Apply):
                    for e in step.entries:
                        self._apply(sn, e)
                    for rs in rd.read_states:
                        need = self.reads.pop(rs.context, None)
                        if need is not None and rs.index < need:
                            raise self.fail(
                                f"ReadIndex {rs.index} < {need} already applied for {rs.context!r}"
                            )
            rn.advance(rd)
        self._check_node(sn)

    def _apply(self, sn: SimNode, e: Entry) -> None:
        if e.index != sn.applied + 1:
            raise self.fail(f"node {sn.id} applies {e.index} after {sn.applied}")
        if e.index > sn.disk.last_index() or sn.disk.term(e.index) != e.term:
            raise self.fail(f"node {sn.id} applies {e.index} which is not durable")
        prev = self.applied_map.get(e.index)
        cur = (e.term, int(e.type), e.data)
        if prev is None:
            self.applied_map[e.index] = cur
        elif prev != cur:
            raise self.fail(f"state machine safety: index {e.index} applied as {prev} and {cur}")
        if e.type == EntryType.CONF_CHANGE:
            sn.conf = sn.node.apply_conf_change(decode_conf_change(e.data))
            sn.disk.set_conf_state(sn.conf)
        elif e.data:
            sn.sm.append((e.index, e.data))
        sn.applied = e.index
        self.max_applied = max(self.max_applied, e.index)
        self._note_committed_entry(e.index, e.term)

    def _note_commit(self, sn: SimNode, commit: int) -> None:
        if commit <= self.committed_point[0]:
            return
        try:
            t = sn.node.raft.log.term(commit)
        except Exception as exc:
            raise self.fail(f"node {sn.id} commit {commit} not in its log: {exc}") from exc
        self._note_committed_entry(commit, t)

    def _note_committed_entry(self, index: int, term: int) -> None:
        ci, ct = self.committed_point
        if index > ci:
            self.committed_point = (index, term)
        elif index == ci and term != ct:
            raise self.fail(f"two different entries committed at {index}: terms {ct} and {term}")

    def _check_entries(self, sn: SimNode, ents: list[Entry]) -> None:
        log = sn.node.raft.log
        for e in ents:
            prev_term = log.zero_term_on_err(e.index - 1) if e.index > 1 else 0
            key = (e.index, e.term)
            val = (int(e.type), e.data, prev_term)
            old = self.entry_map.get(key)
            if old is None:
                self.entry_map[key] = val
            elif old[0] != val[0] or old[1] != val[1] or (old[2] and val[2] and old[2] != val[2]):
                raise self.fail(f"log matching: entry {key} is {old} on one node and {val} on node {sn.id}")

    def _check_node(self, sn: SimNode) -> None:
        r = sn.node.raft
        if r.state == StateRole.LEADER:
            other = self.leaders.setdefault(r.term, sn.id)
            if other != sn.id:
                raise self.fail(f"two leaders in term {r.term}: {other} and {sn.id}")
            if sn.was_leader_term != r.term:
                sn.was_leader_term = r.term
                ci, ct = self.committed_point
                snap_i = r.log.snapshot().meta.index
                if ci > snap_i and not r.log.match_term(ci, ct):
                    raise self.fail(
                        f"leader completeness: leader {sn.id} of term {r.term} lacks committed ({ci},{ct})"
                    )

    def check_durability(self) -> None:
        ci, ct = self.committed_point
        if ci == 0 or self.conf_changed:
            return
        holders = 0
        for sn in self.nodes.values():
            d = sn.disk
            snap = d.snapshot().meta
            if snap.index >= ci or (d.last_index() >= ci and d.term(ci) == ct):
                holders += 1
        if holders < len(self.ids) // 2 + 1:
            raise self.fail(f"committed entry ({ci},{ct}) is durable on only {holders} disks")

    def check_logs(self) -> None:
        """Full pairwise log-matching check over every node's current log."""
        logs: dict[int, dict[int, Entry]] = {}
        for sn in self.nodes.values():
            if not sn.alive:
                continue
            log = sn.node.raft.log
            lo, hi = log.first_index(), log.last_index()
            logs[sn.id] = {e.index: e for e in log.slice(lo, hi + 1)} if hi >= lo else {}
        ids = sorted(logs)
        for k, a in enumerate(ids):
            for b in ids[k + 1 :]:
                la, lb = logs[a], logs[b]
                common = sorted(set(la) & set(lb), reverse=True)
                matched = False
                for i in common:
                    if la[i].term == lb[i].term:
                        matched = True
                    if matched and la[i] != lb[i]:
                        raise self.fail(f"log matching: nodes {a},{b} differ at {i} below a match")

    # -- actions ----------------------------------------------------------------------------

    def leader(self) -> SimNode | None:
        best: SimNode | None = None
        for sn in self.nodes.values():
            is_leader = sn.alive and sn.node.raft.state == StateRole.LEADER
            if is_leader and (best is None or sn.node.raft.term > best.node.raft.term):
                best = sn
        return best

    def tick(self) -> None:
        self.now += 1
        for sn in self.nodes.values():
            if sn.alive:
                sn.node.tick()
                self._process(sn)

    def advance(self) -> None:
        """Deliver a due message, or let time pass. Time only advances when the due backlog is
        small, so heartbeats cannot outpace delivery and grow the network queue without bound."""
        due = sum(1 for item in self.net if item[0] <= self.now)
        if due and (due > 3 * len(self.ids) or self.rng.random() < 0.9):
            self.deliver_one()
        else:
            self.tick()

    def deliver_one(self) -> bool:
        due = [k for k, item in enumerate(self.net) if item[0] <= self.now]
        if not due:
            return False
        k = (
            self.rng.choice(due)
            if self.rng.random() < self.p.reorder
            else min(due, key=lambda j: self.net[j][:2])
        )
        _, _, m, inc = self.net.pop(k)
        dst = self.nodes[m.to]
        if not dst.alive or not self.connected(m.frm, m.to):
            self._snap_report(m.frm, inc, m, ok=False)
            return True
        dst.node.step(m)
        self._process(dst)
        self._snap_report(m.frm, inc, m, ok=True)
        return True

    def propose(self, any_leader: bool = False) -> bytes | None:
        sn = self.leader()
        if any_leader:
            # Clients may still reach a deposed leader (e.g. in a minority partition): this is
            # what creates divergent uncommitted suffixes.
            leaders = [x for x in self.nodes.values() if x.alive and x.node.raft.state == StateRole.LEADER]
            sn = self.rng.choice(leaders) if leaders else None
        forward = any_leader and self.rng.random() < 0.3
        if forward:
            # A follower hands its proposal to the leader it knows (PROP_FORWARD); it may reach a
            # deposed leader, be dropped, or be appended and later overwritten.
            alive = [x for x in self.nodes.values() if x.alive]
            sn = self.rng.choice(alive) if alive else None
        if sn is None:
            return None
        self.next_value += 1
        v = b"v%d" % self.next_value
        try:
            if forward:
                sn.node.propose_or_forward(v, v)
            else:
                sn.node.propose(v)
        except ProposalDroppedError:
            return None
        self.proposed.add(v)
        self._process(sn)
        return v

    def read(self) -> None:
        cands = [sn for sn in self.nodes.values() if sn.alive]
        if not cands:
            return
        sn = self.rng.choice(cands)
        self.next_value += 1
        ctx = b"r%d" % self.next_value
        try:
            sn.node.read_index(ctx)
        except ProposalDroppedError:
            return
        self.reads[ctx] = self.max_applied
        self._process(sn)

    def crash(self, sn: SimNode) -> None:
        sn.alive = False
        sn.incarnation += 1

    def restart(self, sn: SimNode) -> None:
        old = sn.disk
        disk = MemoryStorage()
        snap = old.snapshot()
        if not snap.is_empty():
            disk.apply_snapshot(snap)
        ents = old.all_entries()
        disk.append(ents)
        # What a restarted driver reads back from its WAL: the saved hard state, whose commit index
        # may trail the snapshot (a snapshot only holds committed entries).
        hs = sn.saved_hs
        if hs.commit < snap.meta.index:
            hs = HardState(term=hs.term, vote=hs.vote, commit=snap.meta.index)
        disk.set_hard_state(hs)
        disk.set_conf_state(conf_state_from(snap, ents, hs.commit))
        sn.disk = disk
        sn.node = self._new_rawnode(sn.id, snap.meta.index, disk)
        sn.sm = _decode_sm(snap.data)
        sn.applied = snap.meta.index
        sn.conf = snap.meta.conf_state
        sn.alive = True
        sn.was_leader_term = 0
        self._process(sn)

    def compact(self, sn: SimNode) -> None:
        d = sn.disk
        if sn.applied - d.snapshot().meta.index < 3:
            return
        snap: Snapshot = d.create_snapshot(sn.applied, sn.conf, _encode_sm(sn.sm))
        keep = self.rng.randint(0, 2)
        d.compact(max(snap.meta.index - keep, d.first_index()))

    def conf_change(self) -> None:
        ld = self.leader()
        if ld is None:
            return
        cs = ld.node.raft.prs.conf_state()
        options: list[ConfChange] = []
        for nid in self.all_ids:
            if nid in self.removed:
                continue  # ids are never reused
            if nid not in cs.voters and nid not in cs.learners:
                options.append(ConfChange(ConfChangeType.ADD_LEARNER, nid))
                options.append(ConfChange(ConfChangeType.ADD_VOTER, nid))
            elif nid in cs.learners:
                options.append(ConfChange(ConfChangeType.ADD_VOTER, nid))
                options.append(ConfChange(ConfChangeType.REMOVE_NODE, nid))
            elif len(cs.voters) > 2:
                options.append(ConfChange(ConfChangeType.REMOVE_NODE, nid))
        if not options:
            return
        cc = self.rng.choice(options)
        try:
            ld.node.propose_conf_change(cc)
        except (ProposalDroppedError, ValueError):
            return
        self.conf_changed = True
        if cc.type == ConfChangeType.REMOVE_NODE:
            self.removed.add(cc.node_id)
        self._process(ld)

    def partition(self) -> None:
        self.groups = {nid: self.rng.randint(0, 1) for nid in self.all_ids}

    def heal(self) -> None:
        self.groups = {}

    def step(self, faults: bool = True) -> None:
        self.steps += 1
        r = self.rng.random()
        p = self.p
        if r < 0.85:
            # Deliver due messages most of the time; time only advances now and then, or when
            # nothing is due, so the network backlog stays bounded.
            self.advance()
        elif r < 0.93:
            self.propose(any_leader=True)
        elif r < 0.95:
            self.read()
        elif faults:
            r2 = self.rng.random()
            sn = self.nodes[self.rng.choice(self.all_ids)]
            if r2 < p.crash_rate * 20:
                if sn.alive:
                    # Keep a quorum's worth of disks around most of the time so runs make progress.
                    if (
                        sum(1 for x in self.nodes.values() if x.alive) > len(self.ids) // 2
                        or self.rng.random() < 0.2
                    ):
                        self.crash(sn)
                else:
                    self.restart(sn)
            elif r2 < (p.crash_rate + p.partition_rate) * 20:
                if self.groups and self.rng.random() < 0.5:
                    self.heal()
                else:
                    self.partition()
            elif r2 < 0.3 and self.rng.random() < p.conf_change_rate * 30:
                self.conf_change()
            elif r2 < 0.6:
                if sn.alive and self.rng.random() < p.compact_rate * 20:
                    self.compact(sn)
            elif r2 < 0.65:
                ld = self.leader()
                if ld is not None:
                    ld.node.transfer_leader(self.rng.choice(self.all_ids))
                    self._process(ld)
            elif not sn.alive and self.rng.random() < 0.3:
                self.restart(sn)
        self.flush_reports()
        self.check_durability()
        if self.steps % 100 == 0:
            self.check_logs()

    # -- phases -----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            for _ in range(self.p.fault_steps):
                self.step(faults=True)
            self.check_logs()
            self.liveness()
            self.check_logs()
        except (SafetyViolation, LivenessFailure):
            raise
        except AssertionError as exc:
            # The core's own invariant checks (e.g. a commit index beyond the log a leader was
            # promised) are safety violations too.
            raise self.fail(f"core invariant broken: {exc}") from exc
        return self.steps

    def liveness(self) -> None:
        """Heal everything; a leader must emerge and new proposals must commit everywhere."""
        self.heal()
        self.p.crash_mid_fsync = 0.0
        for sn in self.nodes.values():
            if not sn.alive:
                self.restart(sn)
        self.p.drop = 0.0
        self.p.dup = 0.0
        self.p.reorder = 0.0
        self.p.max_delay = min(self.p.max_delay, 2)
        targets: list[bytes] = []
        budget = 20000
        while budget > 0 and len(targets) < 3:
            budget -= 1
            self.steps += 1
            self.advance()
            ld = self.leader()
            if ld is not None and ld.node.raft.log.committed >= ld.node.raft.log.last_index():
                v = self.propose()
                if v is not None:
                    targets.append(v)
            self.flush_reports()
            self.check_durability()
        while budget > 0:
            budget -= 1
            self.steps += 1
            self.advance()
            # Re-propose if a leader change dropped something (the same value may then commit
            # twice; that is fine for this check).
            if self.steps % 50 == 0:
                missing = [v for v in targets if not self._applied_everywhere(v)]
                if not missing:
                    return
                if self.steps % 400 == 0:
                    ld = self.leader()
                    for v in missing:
                        if ld is not None and not any(v == d for _, d in ld.sm):
                            try:
                                ld.node.propose(v)
                            except ProposalDroppedError:
                                pass
                            self._process(ld)
            self.flush_reports()
            self.check_durability()
        raise LivenessFailure(
            f"seed={self.seed}: proposals {targets} not applied on all nodes after healing; "
            f"status={[sn.node.status() for sn in self.nodes.values()]}"
        )

    def _applied_everywhere(self, v: bytes) -> bool:
        ld = self.leader()
        if ld is None:
            return False
        cs = ld.node.raft.prs.conf_state()
        members = set(cs.voters) | set(cs.learners)
        return all(any(d == v for _, d in self.nodes[n].sm) for n in members if self.nodes[n].alive)


def run_seed(seed: int, params: SimParams | None = None, planner: Planner = plan) -> int:
    """Run one seed; returns the number of steps. Raises SafetyViolation/LivenessFailure."""
    return Sim(seed, params, planner).run()


__all__ = [
    "LivenessFailure",
    "Planner",
    "SafetyViolation",
    "Sim",
    "SimParams",
    "allow_unsafe_commit_previous_term",
    "run_seed",
]
