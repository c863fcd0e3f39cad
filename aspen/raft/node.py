"""The asyncio driver around the sans-I/O Raft core.

The driver carries out the core's work in a fixed order (etcd-io/raft README, "Usage"):

1. Inputs (network messages, proposals, read requests, ticks, admin operations) are queued by any
   coroutine and fed to the core only by the loop task, and only between `advance()` and the next
   `ready()` — the core never sees a call in the middle of a Ready.
2. Each Ready is carried out in the order `aspen.raft.core.plan.plan` returns (the simulator runs
   the same function): a leader's early appends, the apply of entries committed earlier, commit
   notices, one fsync for the snapshot, entries and hard state (in a worker thread, so the loop keeps
   accepting work), the messages that promise what was persisted, then `advance()`.
3. Group commit falls out of (1)+(2): proposals that arrive while an fsync is running are packed into
   one log entry by the next turn of the loop.

A proposal's entry carries `(proposer node id, sequence)` in a 16-byte header so the node that
proposed it can hand each caller its own result when the entry is applied. A caller whose deadline
passes gets `OutcomeUnknown` — the entry may still commit — never a "failed".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgpack

from aspen.raft.core import (
    Config,
    MemoryStorage,
    ProposalDroppedError,
    RawNode,
    SnapshotOutOfDateError,
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
    plan,
)
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
    Snapshot,
    SnapshotMeta,
    StateRole,
)
from aspen.raft.errors import (
    AlreadyInitialized,
    ApplyFailed,
    InvalidMembershipChange,
    LeaderUnreachable,
    MembershipChangePending,
    NotLeader,
    OutcomeUnknown,
    RaftError,
    ShuttingDown,
)
from aspen.raft.transport import Transport
from aspen.raft.wal import WAL
from aspen.raft.wal.snapfile import SnapFile, read_snapshot, snapshot_name, write_snapshot

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<QQ")
T = TypeVar("T")


class Applier(Protocol):
    """The replicated state machine as the driver sees it."""

    def encode_batch(self, commands: Sequence[Any]) -> bytes: ...

    def apply_batch(self, index: int, data: bytes) -> list[Any]:
        """Apply one entry's commands in order; one result per command. Must be deterministic.
        A result that is an `ApplyFailed` fails that command's proposer with it."""

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverConfig:
    node_id: NodeId
    data_dir: Path
    tick_interval_s: float = 0.1
    election_tick: int = 15
    heartbeat_tick: int = 5
    #: Group commit bounds for one log entry.
    max_batch_commands: int = 1000
    max_batch_bytes: int = 1024 * 1024
    #: Take a snapshot (and compact the log) every this many applied entries.
    snapshot_entries: int = 10_000
    #: Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot.
    keep_entries: int = 1_000
    seed: int | None = None
    #: Write snapshots from a forked child (copy-on-write) instead of in the loop.
    fork_snapshots: bool = True
    #: How long a leader may hold a notice that only announces a new commit index to a follower,
    #: waiting for an append with entries to carry it (see `_handle_ready`). Bounds how far a
    #: follower's applied state lags behind a lone writer's.
    commit_notice_delay_s: float = 0.005


@dataclass(slots=True)
class _Proposal:
    command: Any
    size: int
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _ReadBatch:
    futures: list[asyncio.Future[int]] = field(default_factory=list)
    #: Loop time the ReadIndex round was started.
    started: float = 0.0


@dataclass(slots=True)
class _SnapshotJob:
    meta: SnapshotMeta
    waiters: list[asyncio.Future[int]]
    #: The state-machine image at `meta.index` (read back from the child's file when forked).
    image: asyncio.Future[bytes]
    forked: bool


@dataclass(frozen=True, slots=True)
class DriverStatus:
    node_id: NodeId
    role: StateRole
    leader_id: NodeId
    term: int
    commit: int
    applied: int
    last_index: int
    snapshot_index: int
    conf_state: ConfState
    progress: dict[NodeId, int]  # leader only: matched index per peer

    @property
    def is_leader(self) -> bool:
        return self.role == StateRole.LEADER

    @property
    def is_voter(self) -> bool:
        return self.node_id in self.conf_state.voters

    @property
    def is_learner(self) -> bool:
        return self.node_id in self.conf_state.learners


class RaftNode:
    """One Raft member: owns the core, the WAL and the state machine's apply loop."""

    def __init__(
        self,
        config: DriverConfig,
        applier: Applier,
        *,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.config = config
        #: Observes each group-commit batch as (commands, bytes) when it is proposed (metrics).
        self._on_batch = on_batch
        self.id = config.node_id
        self._applier = applier
        self._transport: Transport | None = None
        self._wal: WAL | None = None
        self._storage = MemoryStorage()
        self._raw: RawNode | None = None
        #: Every WAL call runs on this one thread, in submission order: a call the loop stopped
        #: awaiting (cancellation) still finishes before the next one (e.g. close) starts.
        self._wal_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wal-{config.node_id}")
        self._wake = asyncio.Event()
        self._inbox: deque[Message] = deque()
        self._proposals: deque[_Proposal] = deque()
        self._ops: deque[Callable[[RawNode], None]] = deque()
        self._read_waiters: list[asyncio.Future[int]] = []
        self._reads_in_flight: dict[bytes, _ReadBatch] = {}
        self._reads_pending_apply: list[tuple[int, asyncio.Future[int]]] = []
        self._pending: dict[int, list[asyncio.Future[Any]]] = {}
        #: What the Ready being applied did: answered callers of ours / applied entries of others.
        self._answered_here = False
        self._applied_for_peers = False
        #: Commit notices held back, by peer, until an append carries them or the timer sends them.
        self._parked_notices: dict[NodeId, Message] = {}
        self._notice_timer: asyncio.TimerHandle | None = None
        self._conf_waiters: list[tuple[ConfChange, asyncio.Future[Any]]] = []
        self._snapshot_requests: list[asyncio.Future[int]] = []
        self._snapshot_job: _SnapshotJob | None = None
        self._snapshot_reaper: asyncio.Task[None] | None = None
        # Entries and ReadIndex requests are matched to their callers by (node id, sequence). Start
        # each incarnation's sequences at the wall clock in ns, so an entry or a ReadIndex answer
        # from before a restart (committed or delivered late) never matches a new caller.
        self._seq = self._read_seq = time.time_ns()
        self._ticks = 0
        self._applied = 0
        self._snapshot_index = 0
        #: The hard state the WAL holds (its commit index may trail the live one).
        self._saved_hard_state = HardState()
        self._role = StateRole.FOLLOWER
        self._leader = NONE
        self._conf = ConfState()
        #: Opaque per-member context (the node layer stores addresses here); replicated through
        #: conf-change entries and carried in snapshots, so it survives compaction and restarts.
        self.members: dict[NodeId, bytes] = {}
        self._on_membership: list[Callable[[ConfState, dict[NodeId, bytes]], None]] = []
        self._on_role: list[Callable[[StateRole, NodeId], None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        #: Bumped on every applied index; waiters poll it (learner catch-up, tests).
        self._applied_event = asyncio.Event()
        self._role_changed = asyncio.Event()

    # ------------------------------------------------------------------------------ lifecycle --
    async def start(self, transport: Transport) -> None:
        self._transport = transport
        wal, recovered = await self._on_wal_thread(WAL.open, self.config.data_dir)
        self._wal = wal
        if recovered.torn_bytes_dropped:
            log.warning("wal tail truncated on recovery", extra={"bytes": recovered.torn_bytes_dropped})
        applied = 0
        if recovered.snapshot is not None and not recovered.snapshot.is_empty():
            self._storage.apply_snapshot(recovered.snapshot)
            self._restore_snapshot_data(recovered.snapshot.data)
            applied = recovered.snapshot.meta.index
            self._snapshot_index = applied
        if recovered.entries:
            self._storage.append(list(recovered.entries))
        hs = self._saved_hard_state = recovered.hard_state
        if hs.commit < applied:
            # The commit index is persisted lazily (see `_persist`), so it may trail the snapshot;
            # a snapshot only ever holds committed entries.
            hs = HardState(term=hs.term, vote=hs.vote, commit=applied)
        self._storage.set_hard_state(hs)
        conf = conf_state_from(recovered.snapshot, list(recovered.entries), hs.commit)
        self._storage.set_conf_state(conf)
        self._conf = conf
        self._applied = applied
        rng = random.Random(self.config.seed if self.config.seed is not None else time.time_ns() ^ self.id)
        self._raw = RawNode(
            Config(
                id=self.id,
                election_tick=self.config.election_tick,
                heartbeat_tick=self.config.heartbeat_tick,
                applied=applied,
                rng=rng,
            ),
            self._storage,
        )
        if conf.voters == (self.id,):
            # A single voter needs nobody's permission: don't make a restarted one-node cluster wait
            # an election timeout before it serves again.
            self._raw.campaign()
        self._loop_task = asyncio.create_task(self._run(), name=f"raft-loop-{self.id}")
        self._tick_task = asyncio.create_task(self._ticker(), name=f"raft-tick-{self.id}")
        self._wake.set()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._notice_timer is not None:
            self._notice_timer.cancel()
        for task in (self._tick_task, self._loop_task, self._snapshot_reaper):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._fail_all(ShuttingDown("node is shutting down"))
        if self._transport is not None:
            await self._transport.close()
        if self._wal is not None:
            await self._on_wal_thread(self._wal.close)
        self._wal_thread.shutdown(wait=False)
        self.stopped.set()

    # ---------------------------------------------------------------------------- public API --
    @property
    def is_initialized(self) -> bool:
        return not self._conf.is_empty()

    @property
    def leader_id(self) -> NodeId:
        return self._leader

    @property
    def role(self) -> StateRole:
        return self._role

    @property
    def conf_state(self) -> ConfState:
        return self._conf

    @property
    def applied_index(self) -> int:
        return self._applied

    def on_membership_change(self, callback: Callable[[ConfState, dict[NodeId, bytes]], None]) -> None:
        self._on_membership.append(callback)

    def on_role_change(self, callback: Callable[[StateRole, NodeId], None]) -> None:
        self._on_role.append(callback)

    def status(self) -> DriverStatus:
        raw = self._require_raw()
        st = raw.status()
        progress: dict[NodeId, int] = {}
        if self._role == StateRole.LEADER:
            progress = {pid: p.match for pid, p in st.progress.items()}
        return DriverStatus(
            node_id=self.id,
            role=self._role,
            leader_id=self._leader,
            term=st.term,
            commit=st.commit,
            applied=self._applied,
            last_index=st.last_index,
            snapshot_index=self._snapshot_index,
            conf_state=self._conf,
            progress=progress,
        )

    def deliver(self, msg: Message) -> None:
        """Called by the transport for every message addressed to this node."""
        if self._stopping:
            return
        self._inbox.append(msg)
        self._wake.set()

    async def propose(
        self, command: Any, *, size: int = 64, timeout: float = 10.0, forward: bool = False
    ) -> Any:
        """Replicate `command`, apply it, and return its result.

        With `forward`, a follower hands the command to the leader over the Raft channel (batched
        with its other proposals, etcd's forwarded MsgProp) and answers when it applies the entry;
        only commands that carry no leader-chosen time or randomness may be forwarded this way.

        Raises `NotLeader` when no node can order it (not the leader, and no leader to forward to,
        or the leader refused it), `OutcomeUnknown` when `timeout` passes first or the leader
        changes while a forwarded command is in flight (it may still be applied), `ShuttingDown`
        when the node stops.
        """
        self._check_running()
        if self._role != StateRole.LEADER and not (forward and self._leader != NONE):
            raise NotLeader(self._leader)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._proposals.append(_Proposal(command, size, fut))
        self._wake.set()
        return await self._await(fut, timeout, "proposal")

    async def read_barrier(self, *, timeout: float = 5.0) -> int:
        """Wait until this node's state machine reflects every write committed before the call
        (ReadIndex). Concurrent callers share one round of heartbeats. Returns the read index."""
        self._check_running()
        if self._leader == NONE:
            raise NotLeader(NONE)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._read_waiters.append(fut)
        self._wake.set()
        result: int = await self._await(fut, timeout, "read index")
        return result

    async def bootstrap(self, voters: Sequence[NodeId] | None = None) -> None:
        """Start a new cluster. By default this node is its single voter (`cluster init`); with
        `voters`, every listed node must bootstrap with the same list (in-process clusters)."""
        self._check_running()
        if self.is_initialized or self._storage.last_index() > 0:
            raise AlreadyInitialized("cluster is already initialized")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def op(raw: RawNode) -> None:
            members = list(voters) if voters else [self.id]
            try:
                raw.bootstrap(members)
            except ValueError as err:  # the core refuses a non-empty log: someone initialised first
                _reject(fut, AlreadyInitialized(str(err)))
                return
            if members == [self.id]:
                raw.campaign()
            _resolve(fut, None)

        self._ops.append(op)
        self._wake.set()
        await self._await(fut, 5.0, "bootstrap")
        if voters and list(voters) != [self.id]:
            return
        # A one-voter cluster elects itself within one persist: return once it leads, so the caller
        # can write right after `cluster init`.
        deadline = asyncio.get_running_loop().time() + 5.0
        while self._role != StateRole.LEADER and asyncio.get_running_loop().time() < deadline:
            self._role_changed.clear()
            try:
                await asyncio.wait_for(
                    self._role_changed.wait(), deadline - asyncio.get_running_loop().time()
                )
            except TimeoutError:
                break

    async def change_membership(self, cc: ConfChange, *, timeout: float = 30.0) -> ConfState:
        """Propose one single-server membership change and wait until it is applied.

        While an earlier change is still unapplied (e.g. just after an election) the proposal is
        retried until `timeout`."""
        self._check_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._role != StateRole.LEADER:
                raise NotLeader(self._leader)
            fut: asyncio.Future[Any] = loop.create_future()
            self._ops.append(self._conf_change_op(cc, fut))
            self._wake.set()
            try:
                remaining = max(0.001, deadline - loop.time())
                result: ConfState = await self._await(fut, remaining, "membership change")
                return result
            except MembershipChangePending:
                if loop.time() >= deadline:
                    raise OutcomeUnknown("membership change still pending at the deadline") from None
                # Bounded by the deadline; the pending change applies within about one round trip.
                await asyncio.sleep(0.05)

    def _conf_change_op(self, cc: ConfChange, fut: asyncio.Future[Any]) -> Callable[[RawNode], None]:
        def op(raw: RawNode) -> None:
            try:
                raw.propose_conf_change(cc)
            except ProposalDroppedError as err:
                pending = "pending" in str(err)
                _reject(fut, MembershipChangePending(str(err)) if pending else NotLeader(self._leader))
                return
            except ValueError as err:
                _reject(fut, InvalidMembershipChange(str(err)))
                return
            # Conf-change entries carry no proposal header; match them by content on apply.
            self._conf_waiters.append((cc, fut))

        return op

    def report_unreachable(self, node_id: NodeId) -> None:
        """The transport lost `node_id`: slow down replication to it, and retry any snapshot."""

        def op(raw: RawNode) -> None:
            raw.report_unreachable(node_id)
            raw.report_snapshot(node_id, False)

        self._ops.append(op)
        self._wake.set()

    async def trigger_snapshot(self) -> int:
        """Snapshot the state machine now; returns the snapshot index."""
        self._check_running()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._snapshot_requests.append(fut)
        self._wake.set()
        result: int = await self._await(fut, 60.0, "snapshot")
        return result

    async def wait_applied(self, index: int, timeout: float) -> bool:
        """Poll-free wait until `applied >= index` or the deadline; True if reached."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._applied < index:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._applied_event.clear()
            try:
                await asyncio.wait_for(self._applied_event.wait(), remaining)
            except TimeoutError:
                return self._applied >= index
        return True

    # ------------------------------------------------------------------------------ internals --
    def _require_raw(self) -> RawNode:
        if self._raw is None:
            raise ShuttingDown("raft node not started")
        return self._raw

    def _check_running(self) -> None:
        if self._stopping or self._raw is None:
            raise ShuttingDown("node is shutting down")
        if self._fatal is not None:
            raise ShuttingDown(f"raft loop failed: {self._fatal}")

    async def _await(self, fut: asyncio.Future[Any], timeout: float, what: str) -> Any:
        # The future belongs to this caller alone, so the deadline can settle it directly: one timer
        # handle per call instead of wait_for + shield (two extra futures and a task per write).
        # The loop only ever completes a future that is not done yet, so a late result is dropped;
        # a cancelled caller cancels the future, and a proposal not yet in the log is then skipped.
        timer = asyncio.get_running_loop().call_later(timeout, _expire, fut, what, timeout)
        try:
            return await fut
        finally:
            timer.cancel()

    async def _on_wal_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._wal_thread, fn, *args)

    async def _ticker(self) -> None:
        interval = self.config.tick_interval_s
        while not self._stopping:
            await asyncio.sleep(interval)  # the clock of the node, not a synchronisation
            self._ticks += 1
            self._wake.set()

    async def _run(self) -> None:
        raw = self._require_raw()
        try:
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                self._feed(raw)
                while raw.has_ready() and not self._stopping:
                    rd = raw.ready()
                    await self._handle_ready(raw, rd)
                    raw.advance(rd)
                    self._feed(raw)
                await self._maybe_snapshot()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a failed fsync or a broken invariant: stop, never limp on
            log.critical("raft loop failed; node stops serving", exc_info=exc)
            self._fatal = exc
            self._fail_all(ShuttingDown(f"raft loop failed: {exc}"))
            self.stopped.set()
            raise

    def _feed(self, raw: RawNode) -> None:
        """Hand every queued input to the core. Only called between advance() and ready()."""
        while self._ticks:
            self._ticks -= 1
            raw.tick()
        while self._inbox:
            msg = self._inbox.popleft()
            try:
                raw.step(msg)
            except Exception as exc:  # a peer's bad message must not take the node down
                log.warning("dropped raft message", extra={"type": msg.type.name, "error": str(exc)})
        while self._ops:
            self._ops.popleft()(raw)
        self._feed_proposals(raw)
        if self._reads_in_flight:
            self._drop_stale_read_rounds()
        if self._read_waiters and not self._reads_in_flight:
            waiters, self._read_waiters = self._read_waiters, []
            self._read_seq += 1
            ctx = _HEADER.pack(self.id, self._read_seq)
            try:
                raw.read_index(ctx)
            except ProposalDroppedError:
                _fail(waiters, NotLeader(self._leader))
            else:
                self._reads_in_flight[ctx] = _ReadBatch(waiters, asyncio.get_running_loop().time())

    def _drop_stale_read_rounds(self) -> None:
        """One ReadIndex round at a time (etcd's linearizable read loop): reads that arrive while a
        round is out wait for it to finish and then share the next one, so a loaded node asks its
        leader once per round trip, not once per turn of its loop. A round unanswered for an
        election timeout went to a leader that is gone or cut off: its reads fail (a client retries
        a read elsewhere) and the next round may start. Checked on every turn (the ticker makes
        one per tick), so a lone read in a lost round fails then, not at its own deadline; with
        `LeaderUnreachable` while this node still knows a leader (`NOT_LEADER` means none known)."""
        cfg = self.config
        oldest = asyncio.get_running_loop().time() - cfg.election_tick * cfg.tick_interval_s
        for ctx, batch in list(self._reads_in_flight.items()):
            if batch.started < oldest:
                del self._reads_in_flight[ctx]
                leader = self._leader
                _fail(batch.futures, LeaderUnreachable(leader) if leader != NONE else NotLeader(NONE))

    def _feed_proposals(self, raw: RawNode) -> None:
        cfg = self.config
        while self._proposals:
            batch: list[_Proposal] = []
            size = 0
            while self._proposals and len(batch) < cfg.max_batch_commands:
                p = self._proposals[0]
                if batch and size + p.size > cfg.max_batch_bytes:
                    break
                self._proposals.popleft()
                if p.future.done():  # the caller gave up before we got to it: don't replicate
                    continue
                batch.append(p)
                size += p.size
            if not batch:
                continue
            self._seq += 1
            header = _HEADER.pack(self.id, self._seq)
            data = header + self._applier.encode_batch([p.command for p in batch])
            try:
                raw.propose_or_forward(data, header)
            except ProposalDroppedError:
                _fail((p.future for p in batch), NotLeader(self._leader))
                continue
            self._pending[self._seq] = [p.future for p in batch]
            if self._on_batch is not None:
                self._on_batch(len(batch), size)

    async def _handle_ready(self, raw: RawNode, rd: Ready) -> None:
        """Carry out `rd` in the order `plan` gives (the one place that order is decided)."""
        if rd.soft_state is not None:
            self._set_soft_state(rd.soft_state.role, rd.soft_state.leader_id)
        wal = self._wal
        assert wal is not None
        transport = self._transport
        self._answered_here = self._applied_for_peers = False
        for step in plan(rd, self._saved_hard_state):
            kind = type(step)
            if kind is Apply:
                self._apply_ready(raw, rd)
            elif kind is Persist:
                assert isinstance(step, Persist)
                await self._persist(wal, step)
            elif kind is Send:
                if transport is not None:
                    _send_all(transport, step.messages)  # type: ignore[union-attr]
            elif kind is SendEarly:
                if transport is not None:
                    parked = self._parked_notices
                    for msg in step.messages:  # type: ignore[union-attr]
                        if parked and msg.type == MessageType.APP:
                            # It carries our commit index too: a notice held for this peer is moot.
                            parked.pop(msg.to, None)
                        transport.send(msg)
            elif kind is Notices:
                if transport is not None:
                    self._send_or_park(transport, step.messages)  # type: ignore[union-attr]
            elif kind is PersistSnapshot:
                snap = step.snapshot  # type: ignore[union-attr]
                await self._on_wal_thread(wal.save_snapshot, snap)
                self._storage.apply_snapshot(snap)
            elif kind is InstallSnapshot:
                self._install_snapshot(step.snapshot)  # type: ignore[union-attr]

    def _send_or_park(self, transport: Transport, notices: tuple[Message, ...]) -> None:
        if self._answered_here and not (self._applied_for_peers or self._pending):
            # Only callers of this node were waiting on these entries, and nothing else is in
            # flight (a lone writer): hold the notices back. A writer's next entry carries the
            # commit index to every follower anyway, and each notice costs a TLS write, a
            # follower's wake-up and its acknowledgement. Entries another node proposed are
            # announced at once, since its callers wait for the notice, and so is everything under
            # load, when the next append follows soon and holding would delay every Ready.
            self._park_notices(notices)
        else:
            if self._parked_notices:
                for msg in notices:
                    self._parked_notices.pop(msg.to, None)
            _send_all(transport, notices)

    def _park_notices(self, notices: Iterable[Message]) -> None:
        """Hold `notices` (one per peer, the newest wins) for `commit_notice_delay_s` at most."""
        for msg in notices:
            self._parked_notices[msg.to] = msg
        if self._notice_timer is None:
            loop = asyncio.get_running_loop()
            self._notice_timer = loop.call_later(self.config.commit_notice_delay_s, self._send_parked)

    def _send_parked(self) -> None:
        self._notice_timer = None
        parked = list(self._parked_notices.values())
        self._parked_notices.clear()
        if parked and self._transport is not None and not self._stopping:
            _send_all(self._transport, parked)

    async def _persist(self, wal: WAL, step: Persist) -> None:
        """Make `step`'s entries (and its hard state, when `durable`) durable with one fsync.

        A hard state that only moves the commit index is not written on its own (see `plan`): it
        rides along with the next entries instead of costing every write a second fsync on every
        member."""
        hs = step.hard_state
        if hs is not None:
            self._storage.set_hard_state(hs)
        if not step.durable:
            return
        saved = self._saved_hard_state
        current = self._storage.hard_state
        record = current if current != saved else None
        await self._on_wal_thread(wal.save, record, step.entries)
        if record is not None:
            self._saved_hard_state = record
        if step.entries:
            self._storage.append(list(step.entries))

    def _apply_ready(self, raw: RawNode, rd: Ready) -> None:
        """Apply `rd`'s committed entries, then release the reads they make servable."""
        for context in rd.dropped_proposals:
            proposer, seq = _HEADER.unpack(context)
            futures = self._pending.pop(seq, None) if proposer == self.id else None
            if futures is not None:  # never appended anywhere: the caller may retry
                _fail(futures, NotLeader(self._leader))
        for entry in rd.committed_entries:
            self._apply_entry(raw, entry)
        if rd.committed_entries or rd.snapshot is not None:
            self._applied_event.set()
        for rs in rd.read_states:
            batch = self._reads_in_flight.pop(rs.context, None)
            if batch is not None:
                self._reads_pending_apply.extend((rs.index, f) for f in batch.futures)
        if self._reads_pending_apply:
            still: list[tuple[int, asyncio.Future[int]]] = []
            for index, fut in self._reads_pending_apply:
                if fut.done():
                    continue
                if index <= self._applied:
                    fut.set_result(index)
                else:
                    still.append((index, fut))
            self._reads_pending_apply = still

    def _set_soft_state(self, role: StateRole, leader: NodeId) -> None:
        was_leader = self._role == StateRole.LEADER
        old_leader = self._leader
        self._role, self._leader = role, leader
        if not was_leader and leader != old_leader:
            # Our forwarded proposals and ReadIndex round went to `old_leader`, which will not
            # confirm them now (it may have appended the proposals, and the next leader may commit
            # them, or not). Answer now rather than at the callers' deadline.
            self._fail_sent(
                NotLeader(leader),
                OutcomeUnknown(
                    f"leader {old_leader} lost leadership while the forwarded request was in flight; "
                    "it may or may not have been applied"
                ),
            )
        self._role_changed.set()
        if was_leader and role != StateRole.LEADER:
            # Tell callers now instead of letting them wait out their deadline; in-flight reads can no
            # longer be confirmed by us, so their callers retry elsewhere.
            self._fail_in_flight(
                NotLeader(leader),
                OutcomeUnknown("leadership changed before the write committed; it may or may not apply"),
            )
        for cb in self._on_role:
            cb(role, leader)

    def _apply_entry(self, raw: RawNode, entry: Entry) -> None:
        if entry.type == EntryType.CONF_CHANGE:
            self._applied_for_peers = True
            cc = decode_conf_change(entry.data)
            try:
                self._conf = raw.apply_conf_change(cc)
            except ValueError as err:
                # Validated when proposed, so this only happens if membership moved in between; every
                # replica sees the same log and skips the same entry.
                log.warning("skipped invalid membership change", extra={"change": str(cc), "error": str(err)})
                self._fail_conf_waiter(cc, InvalidMembershipChange(str(err)))
                self._applied = entry.index
                return
            if cc.type == ConfChangeType.REMOVE_NODE:
                self.members.pop(cc.node_id, None)
            elif cc.context:
                self.members[cc.node_id] = cc.context
            for waiter in list(self._conf_waiters):
                pending_cc, fut = waiter
                if pending_cc == cc:
                    self._conf_waiters.remove(waiter)
                    _resolve(fut, self._conf)
                    break
            for cb in self._on_membership:
                cb(self._conf, dict(self.members))
        elif len(entry.data) >= _HEADER.size:
            proposer, seq = _HEADER.unpack_from(entry.data)
            results = self._apply_guarded(entry.index, entry.data[_HEADER.size :])
            if proposer == self.id:
                futures = self._pending.pop(seq, None)
                if futures is not None:
                    self._answered_here = True
                    if results is None or len(results) != len(futures):
                        failed = ApplyFailed(f"log entry {entry.index} could not be applied")
                        results = [failed] * len(futures)
                    for fut, result in zip(futures, results, strict=True):
                        if isinstance(result, ApplyFailed):
                            _reject(fut, result)
                        else:
                            _resolve(fut, result)
            else:
                self._applied_for_peers = True
        self._applied = entry.index

    def _apply_guarded(self, index: int, data: bytes) -> list[Any] | None:
        """The entry's results (an `ApplyFailed` result fails its proposer), or None if the state
        machine raised for the entry as a whole.

        Last resort: the state machine is total (bounded record parsing, every layer's failure is a
        result), so this catches only bugs. Without it one such bug in a committed entry stops every
        replica, and again on each restart when the entry is replayed. A deterministic bug raises
        the same way on every replica, so skipping the command keeps them equal; the log line with
        the index is there to find it."""
        try:
            return self._applier.apply_batch(index, data)
        except Exception:
            log.exception("committed entry could not be applied; skipped", extra={"index": index})
            return None

    def _fail_conf_waiter(self, cc: ConfChange, err: Exception) -> None:
        for waiter in list(self._conf_waiters):
            if waiter[0] == cc:
                self._conf_waiters.remove(waiter)
                _reject(waiter[1], err)
                return

    def _snapshot_data(self) -> bytes:
        data: bytes = msgpack.packb(
            {"sm": self._applier.snapshot(), "members": list(self.members.items())}, use_bin_type=True
        )
        return data

    def _restore_snapshot_data(self, data: bytes) -> None:
        image = msgpack.unpackb(data, raw=False, strict_map_key=False)
        self._applier.restore(image["sm"])
        self.members = {int(k): bytes(v) for k, v in image["members"]}

    def _install_snapshot(self, snap: Snapshot) -> None:
        self._restore_snapshot_data(snap.data)
        self._applied = snap.meta.index
        self._snapshot_index = snap.meta.index
        self._conf = snap.meta.conf_state
        for cb in self._on_membership:
            cb(self._conf, dict(self.members))

    async def _maybe_snapshot(self) -> None:
        """Start a snapshot when one is due or requested; finish the one a child process wrote.

        The image is written by a forked child (copy-on-write: the child sees the state machine frozen
        at `index` while the parent keeps applying), so the node never stops to serialise its state —
        the approach of Redis' BGSAVE. Only the bookkeeping (WAL marker, log compaction) runs here."""
        job = self._snapshot_job
        requests, self._snapshot_requests = self._snapshot_requests, []
        if job is not None:
            job.waiters.extend(requests)
            if job.image.done():
                self._snapshot_job = None
                await self._finish_snapshot(job)
            return
        due = self._applied - self._snapshot_index >= self.config.snapshot_entries
        if not (due or requests) or self._applied <= self._snapshot_index:
            for fut in requests:
                _resolve(fut, self._snapshot_index)
            return
        self._snapshot_job = self._start_snapshot(requests)

    def _start_snapshot(self, waiters: list[asyncio.Future[int]]) -> _SnapshotJob:
        assert self._wal is not None
        meta = SnapshotMeta(
            index=self._applied, term=self._storage.term(self._applied), conf_state=self._conf
        )
        job = _SnapshotJob(meta, waiters, asyncio.get_running_loop().create_future(), forked=False)
        if not self.config.fork_snapshots or not hasattr(os, "fork"):
            job.image.set_result(self._snapshot_data())
            return job
        snap_dir = self._wal.snap_dir
        pid = os.fork()
        if pid == 0:  # the child: write the image, then leave without running any of the parent's cleanup
            code = 1
            try:
                gc.disable()  # fewer pages touched, fewer copied
                write_snapshot(snap_dir, Snapshot(meta, self._snapshot_data()))
                code = 0
            finally:
                os._exit(code)
        job.forked = True
        self._snapshot_reaper = asyncio.create_task(self._reap_snapshot_child(pid, job, snap_dir))
        return job

    async def _reap_snapshot_child(self, pid: int, job: _SnapshotJob, snap_dir: Path) -> None:
        try:
            _, status = await asyncio.to_thread(os.waitpid, pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                raise RuntimeError(f"snapshot process exited with status {code}")
            path = snap_dir / snapshot_name(job.meta.index, job.meta.term)
            snap = await asyncio.to_thread(read_snapshot, SnapFile(job.meta.index, job.meta.term, path))
            job.image.set_result(snap.data)
        except Exception as exc:
            job.image.set_exception(exc)
        self._wake.set()

    async def _finish_snapshot(self, job: _SnapshotJob) -> None:
        meta = job.meta
        try:
            data = job.image.result()
            if meta.index > self._snapshot_index:  # else a newer snapshot was installed meanwhile
                assert self._wal is not None
                if job.forked:
                    await self._on_wal_thread(self._wal.adopt_snapshot, meta)
                else:
                    await self._on_wal_thread(self._wal.save_snapshot, Snapshot(meta, data))
                with contextlib.suppress(SnapshotOutOfDateError):
                    self._storage.create_snapshot(meta.index, meta.conf_state, data)
                self._snapshot_index = meta.index
                compact_to = meta.index - self.config.keep_entries
                if compact_to > self._storage.first_index():
                    self._storage.compact(compact_to)
                log.info(
                    "snapshot taken", extra={"index": meta.index, "bytes": len(data), "forked": job.forked}
                )
        except Exception as exc:  # a failed snapshot loses nothing: the log is intact; retried when due
            log.error("snapshot failed", extra={"index": meta.index, "error": str(exc)})
            _fail(job.waiters, RaftError(f"snapshot failed: {exc}"))
            return
        for fut in job.waiters:
            _resolve(fut, self._snapshot_index)

    def _fail_in_flight(self, err: Exception, unknown: OutcomeUnknown) -> None:
        """Answer every caller waiting on our leadership. Entries already appended may still commit
        (under the next leader, or on restart): their callers hear `unknown`, never a retryable
        failure, or a CAS could be applied twice. Queued proposals and unconfirmed reads get `err`."""
        self._fail_sent(err, unknown)
        _fail((f for _, f in self._conf_waiters), unknown)
        self._conf_waiters.clear()
        _fail((p.future for p in self._proposals), err)
        self._proposals.clear()

    def _fail_sent(self, err: Exception, unknown: OutcomeUnknown) -> None:
        """Answer the callers of what left this node: proposals in the log or handed to a leader
        hear `unknown` (they may still commit), ReadIndex rounds not yet confirmed hear `err`."""
        _fail((f for futures in self._pending.values() for f in futures), unknown)
        self._pending.clear()
        _fail((f for batch in self._reads_in_flight.values() for f in batch.futures), err)
        self._reads_in_flight.clear()

    def _fail_all(self, err: Exception) -> None:
        self._fail_in_flight(err, OutcomeUnknown(f"{err}; the write may or may not have been applied"))
        _fail(self._read_waiters, err)
        self._read_waiters.clear()
        _fail((f for _, f in self._reads_pending_apply), err)
        self._reads_pending_apply.clear()


def _send_all(transport: Transport, msgs: Iterable[Message]) -> None:
    for msg in msgs:
        transport.send(msg)


def _expire(fut: asyncio.Future[Any], what: str, timeout: float) -> None:
    _reject(fut, OutcomeUnknown(f"{what} timed out after {int(timeout * 1000)}ms"))


# A caller's future may already be settled by its deadline or cancelled with the caller: settle each
# at most once, never raising into the loop.
def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _reject(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _fail(futures: Iterable[asyncio.Future[Any]], exc: Exception) -> None:
    for f in futures:
        _reject(f, exc)


__all__ = ["Applier", "DriverConfig", "DriverStatus", "RaftNode"]
