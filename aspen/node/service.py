"""Request dispatch: the boundary where wire requests become state-machine commands and where every
error becomes a wire `Error` frame.

Pipeline for each stream: decode + authenticate (codec) → init gate → handler.
Whatever a handler raises is converted here and only here; the node never answers with a traceback
and never crashes on a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from aspen import kv
from aspen.api import messages as m
from aspen.api.codec import (
    MAX_PROXY_HOPS,
    decode_envelope_rid,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
    raise_for_error,
)
from aspen.api.errors import (
    AspenError,
    InternalError,
    InvalidRequestError,
    NotInitializedError,
    NotLeaderError,
    OutcomeUnknownError,
    ServiceUnavailableError,
)
from aspen.api.lease_messages import LEASE_WRITES
from aspen.api.operation import OPERATIONS
from aspen.node.backup import SnapshotExports, encode_image
from aspen.node.dispatch import Dispatch
from aspen.node.leases import LeaseService
from aspen.node.logsetup import REQUEST
from aspen.node.membership import (
    EndpointAddr,
    MembershipError,
    add_learner,
    change_voters,
    parse_endpoint_addr,
    promote,
)
from aspen.node.metrics import NodeMetrics
from aspen.node.proposer import Proposer
from aspen.node.state import NodeStateMachine
from aspen.raft.core.types import ConfChange, ConfChangeType, StateRole
from aspen.raft.errors import (
    AlreadyInitialized,
    InvalidMembershipChange,
    LeaderUnreachable,
    NotLeader,
    OutcomeUnknown,
    RaftError,
    ShuttingDown,
)
from aspen.raft.node import RaftNode
from aspen.rpc.client import RpcClient
from aspen.rpc.errors import RpcConnectError, RpcTransportError
from aspen.rpc.ticket import ClusterTicket, TicketPeer, parse_host_port

log = logging.getLogger(__name__)
#: Request-scoped lines (failures, slow requests) carry the client's request id from the contextvars.
rlog = structlog.get_logger("aspen.node.request")
#: A request slower than this is logged with its request id (the histogram has the distribution).
SLOW_REQUEST_S = 1.0

Handler = Callable[[Any], Awaitable[Any]]

_ROLE_NAMES = {
    StateRole.LEADER: "Leader",
    StateRole.CANDIDATE: "Candidate",
    StateRole.PRE_CANDIDATE: "Candidate",
    StateRole.FOLLOWER: "Follower",
}


@dataclass(frozen=True, slots=True)
class NodeIdentityInfo:
    node_id: int
    endpoint_id: str
    addrs: tuple[str, ...]  # "host:port" dial targets

    def endpoint_addr_json(self) -> bytes:
        return EndpointAddr(self.endpoint_id, self.addrs).to_json()


#: Writes a follower proposes itself, handing the log entry to the leader over the Raft channel
#: (batched, like the leader's own) instead of relaying the request over QUIC: the leader's thread
#: is the cluster's bottleneck, and most of a relayed request's cost there is QUIC. Only plain KV
#: writes: coordination and lease commands carry the time the leader chose, so they are relayed.
PROPOSED_BY_FOLLOWERS = frozenset(
    {
        "WriteKey",
        "DeleteKey",
        "CompareAndSwapKey",
        "CompareAndDeleteKey",
        "BatchWrite",
        "ConditionalBatchWrite",
    }
)
#: Plain KV writes, by request type: the keys each one writes (a conditional batch's conditions only
#: read, so they may name reserved keys).
_PLAIN_WRITE_KEYS: dict[str, Callable[[Any], list[str]]] = {
    "WriteKey": lambda r: [r.key],
    "DeleteKey": lambda r: [r.key],
    "CompareAndSwapKey": lambda r: [r.key],
    "CompareAndDeleteKey": lambda r: [r.key],
    "BatchWrite": lambda r: [op.key for op in r.operations],
    "ConditionalBatchWrite": lambda r: [op.key for op in r.operations],
    "WriteKeyWithLease": lambda r: [r.key],
}


def _refuse_reserved_writes(request: m.Request) -> None:
    """`InvalidRequestError` if a plain KV write from a client names a key under a reserved prefix.

    Checked on every frame that arrives from outside, before it is forwarded or proposed; the
    node's own writes of `_system:` keys (the blob service's replica records) go through `submit`,
    which does not pass here. This keeps clients from corrupting layer records by mistake; it is no
    authorisation boundary (a cookie holder is trusted), and apply stays total whatever is stored.
    """
    keys_of = _PLAIN_WRITE_KEYS.get(request.type)
    if keys_of is None:
        return
    for key in keys_of(request):
        error = kv.reserved_key_error(key)
        if error is not None:
            raise InvalidRequestError(error)


#: Requests only the leader can order. A follower forwards them to the leader it knows (reads stay
#: local: a follower serves them after a ReadIndex round through the leader). Lease writes are
#: forwarded like KV writes (aspen.api.lease_messages).
FORWARDED = PROPOSED_BY_FOLLOWERS | {"AddLearner", "ChangeMembership", "PromoteLearner"} | LEASE_WRITES
RELAYED = FORWARDED - PROPOSED_BY_FOLLOWERS


def relayed(name: str) -> bool:
    """Whether a follower relays this request to the leader: every declared write (it carries the
    leader's clock), and the undeclared ones in `RELAYED`."""
    spec = OPERATIONS.get(name)
    return not spec.kind.is_read if spec is not None else name in RELAYED


FORWARD_TIMEOUT_S = 30.0


class NodeService:
    def __init__(
        self,
        *,
        me: NodeIdentityInfo,
        proof_key: bytes,
        cookie: str,
        raft: RaftNode,
        state: NodeStateMachine,
        metrics: NodeMetrics,
    ) -> None:
        self.me = me
        #: Proves the cookie to the leader when forwarding (the transport authenticates requests
        #: to this node before they reach `handle`).
        self._proof_key = proof_key
        self._cookie = cookie
        self.raft = raft
        self.state = state
        self.metrics = metrics
        self._started = time.monotonic()
        self._leader_clients: dict[int, tuple[bytes, RpcClient]] = {}
        #: Set when the node a request was forwarded to stops being the leader we know of.
        self._leader_gone: dict[int, asyncio.Event] = {}
        raft.on_role_change(self._leader_changed)
        self.exports = SnapshotExports()
        self.proposer = Proposer(raft, state)
        #: The declared operations a layer implements (aspen.api.operation) need no handler here.
        self._dispatch = Dispatch(self.proposer, state.layers)
        m.warm_up()
        self._handlers: dict[str, Handler] = {
            "Ping": self._ping,
            "GetHealth": self._health,
            "GetRaftMetrics": self._raft_metrics,
            "GetLeader": self._leader,
            "GetNodeInfo": self._node_info,
            "GetClusterTicket": self._cluster_ticket,
            "InitCluster": self._init_cluster,
            "GetClusterState": self._cluster_state,
            "GetMetrics": self._metrics,
            "TriggerSnapshot": self._trigger_snapshot,
            "SnapshotSave": self._snapshot_save,
            "GetSnapshotChunk": self._snapshot_chunk,
            "GetStateHash": self._state_hash,
            "AddLearner": self._add_learner,
            "ChangeMembership": self._change_membership,
            "PromoteLearner": self._promote_learner,
            "ReadKey": self._read_key,
            "WriteKey": self._write_key,
            "DeleteKey": self._delete_key,
            "CompareAndSwapKey": self._cas,
            "CompareAndDeleteKey": self._cad,
            "ScanKeys": self._scan,
            "BatchRead": self._batch_read,
            "BatchWrite": self._batch_write,
            "ConditionalBatchWrite": self._conditional_batch_write,
        }
        self._handlers |= LeaseService(state.kv, self.proposer).handlers()

    def register(self, handlers: dict[str, Handler]) -> None:
        """Serve more request kinds (e.g. the blob service's), through the same boundary."""
        self._handlers.update(handlers)

    async def submit(self, request: m.Request) -> m.Response:
        """Run a request from inside the node (e.g. blob metadata writes) the way a client's runs:
        forwarded to the leader when only the leader can order it. Raises what a handler raises."""
        if relayed(request.type) and self.raft.role != StateRole.LEADER:
            return raise_for_error(decode_response(await self._forward(request, 0)))
        response: m.Response = await self._handler(request.type)(request)
        return response

    def _handler(self, name: str) -> Handler:
        handler = self._handlers.get(name) or self._dispatch.handler(name)
        if handler is None:  # decoded, so declared: a declaration with neither layer nor handler
            raise InternalError(f"no handler for {name}")
        return handler

    # -------------------------------------------------------------------------------- boundary --
    async def handle(self, data: bytes) -> bytes:
        """One request frame in, one response frame out. Never raises."""
        started = time.perf_counter()
        op = "Invalid"
        # Every line logged while serving carries the request id and operation (logsetup.REQUEST).
        scope = REQUEST.set((None, op))
        try:
            try:
                request, hops, rid = decode_envelope_rid(data)
                op = request.type
                REQUEST.set((rid, op))
                if op not in m.BOOTSTRAP_REQUESTS and not self.raft.is_initialized:
                    raise NotInitializedError()
                _refuse_reserved_writes(request)
                if relayed(op) and self.raft.role != StateRole.LEADER:
                    frame = await self._forward(request, hops, rid)
                else:
                    response = await self._handler(op)(request)
                    frame = encode_response(response)
            except AspenError as err:
                self.metrics.error(op, err.code.value)
                rlog.info("request failed", code=err.code.value, error=err.message)
                frame = encode_error(err)
            except RaftError as err:
                wire = self._map_raft_error(err)
                self.metrics.error(op, wire.code.value)
                rlog.info("request failed", code=wire.code.value, error=wire.message)
                frame = encode_error(wire)
            except Exception:
                log.exception("request handler failed", extra={"operation": op})
                self.metrics.error(op, "INTERNAL_ERROR")
                frame = encode_error(InternalError("internal error"))
            elapsed = time.perf_counter() - started
            if elapsed >= SLOW_REQUEST_S:
                rlog.warning("slow request", duration_ms=int(elapsed * 1000))
        finally:
            REQUEST.reset(scope)
        self.metrics.request(op, elapsed)
        return frame

    @staticmethod
    def _map_raft_error(err: RaftError) -> AspenError:
        if isinstance(err, NotLeader):
            return NotLeaderError("NOT_LEADER", err.leader_id or None)
        if isinstance(err, OutcomeUnknown):
            return OutcomeUnknownError(str(err))
        if isinstance(err, ShuttingDown | LeaderUnreachable):
            return ServiceUnavailableError(str(err))
        if isinstance(err, InvalidMembershipChange):
            return InvalidRequestError(f"invalid request: {err}")
        return InternalError(str(err))

    async def _forward(self, request: m.Request, hops: int, rid: str | None = None) -> bytes:
        """Send `request` to the leader and relay its answer verbatim."""
        leader = self.raft.leader_id
        if (
            not leader
            or leader == self.me.node_id
            or hops >= MAX_PROXY_HOPS
            or leader not in self.raft.members
        ):
            raise NotLeaderError("NOT_LEADER", leader or None)
        client = self._leader_client(leader)
        frame = encode_request(request, hops=hops + 1, rid=rid)
        # A leader that died or froze answers nothing and its QUIC connection lingers until the
        # idle timeout; Raft notices within an election timeout. Stop waiting then, not after 30 s.
        gone = self._leader_gone.setdefault(leader, asyncio.Event())
        sent = asyncio.ensure_future(client.request(frame, timeout=FORWARD_TIMEOUT_S))
        lost = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait((sent, lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            sent.cancel()  # our caller gave up: so does the forwarded request
            raise
        finally:
            lost.cancel()
        if not sent.done():
            sent.cancel()
            raise OutcomeUnknownError(
                f"leader {leader} lost leadership while the forwarded request was in flight; "
                "it may or may not have been applied"
            )
        try:
            return sent.result()
        except RpcConnectError:
            # Not sent, or refused before the leader served anything on the connection (e.g. it
            # was at its connection limit): the outcome is known, the client may retry anywhere.
            raise NotLeaderError("NOT_LEADER", leader) from None
        except RpcTransportError as err:
            raise OutcomeUnknownError(f"forwarding to leader {leader} failed: {err}") from None

    def _leader_changed(self, _role: StateRole, leader: int) -> None:
        for node_id in [n for n in self._leader_gone if n != leader]:
            self._leader_gone.pop(node_id).set()

    def _leader_client(self, leader: int) -> RpcClient:
        context = self.raft.members[leader]
        cached = self._leader_clients.get(leader)
        if cached is not None and cached[0] == context:
            return cached[1]
        addr = parse_endpoint_addr(context)
        own_host = parse_host_port(self.me.addrs[0])[0] if self.me.addrs else None
        client = RpcClient(
            addr.endpoint_id,
            [parse_host_port(a) for a in addr.addrs],
            auth_key=self._proof_key,
            local_host=own_host,
        )
        self._leader_clients[leader] = (context, client)
        return client

    async def close(self) -> None:
        for _, client in self._leader_clients.values():
            await client.aclose()
        self._leader_clients.clear()

    async def _propose(self, command: Any, size: int) -> Any:
        return await self.proposer.propose(command, size)

    async def _propose_kv(self, command: Any, size: int) -> Any:
        """A plain KV write (`PROPOSED_BY_FOLLOWERS`): a follower hands it to the leader itself."""
        return await self.proposer.propose(command, size, forward=True)

    async def _barrier(self, stale: bool) -> None:
        await self.proposer.barrier(stale)

    # ------------------------------------------------------------------------------ bootstrap --
    async def _ping(self, _: m.Ping) -> m.Pong:
        return m.Pong()

    def _uptime(self) -> int:
        return int(time.monotonic() - self._started)

    async def _health(self, _: m.GetHealth) -> m.Health:
        initialized = self.raft.is_initialized
        conf = self.raft.conf_state
        status: Literal["healthy", "degraded", "unhealthy"]
        if not initialized:
            status = "unhealthy"
        elif self.raft.leader_id:
            status = "healthy"
        else:
            status = "degraded"
        return m.Health(
            status=status,
            node_id=self.me.node_id,
            raft_node_id=self.me.node_id,
            uptime_seconds=self._uptime(),
            is_initialized=initialized,
            membership_node_count=(len(conf.voters) + len(conf.learners)) if initialized else None,
            iroh_node_id=self.me.endpoint_id,
        )

    def role_name(self) -> str:
        st = self.raft.status()
        if st.is_learner:
            return "Learner"
        return _ROLE_NAMES[st.role]

    async def _raft_metrics(self, _: m.GetRaftMetrics) -> m.RaftMetrics:
        if not self.raft.is_initialized:
            raise InternalError("cluster not initialized")
        st = self.raft.status()
        replication = None
        if st.is_leader:
            replication = [
                m.ReplicationProgress(node_id=n, matched_index=i) for n, i in sorted(st.progress.items())
            ]
        return m.RaftMetrics(
            node_id=self.me.node_id,
            state=self.role_name(),  # type: ignore[arg-type]
            current_leader=st.leader_id or None,
            current_term=st.term,
            last_log_index=st.last_index,
            last_applied_index=st.applied,
            snapshot_index=st.snapshot_index,
            replication=replication,
        )

    async def _leader(self, _: m.GetLeader) -> m.Leader:
        return m.Leader(leader_id=self.raft.leader_id or None)

    async def _node_info(self, _: m.GetNodeInfo) -> m.NodeInfo:
        return m.NodeInfo(
            node_id=self.me.node_id, endpoint_addr=f"{self.me.endpoint_id}:{list(self.me.addrs)}"
        )

    def member_peers(self) -> list[TicketPeer]:
        """This node first, then every other voter with a known address (≤ 16)."""
        peers = [TicketPeer(self.me.endpoint_id, self.me.addrs)]
        for node_id in self.raft.conf_state.voters:
            if node_id == self.me.node_id or node_id not in self.raft.members:
                continue
            addr = parse_endpoint_addr(self.raft.members[node_id])
            peers.append(TicketPeer(addr.endpoint_id, addr.addrs))
        return peers[:16]

    def ticket(self) -> ClusterTicket:
        return ClusterTicket(cookie=self._cookie, peers=tuple(self.member_peers()))

    async def _cluster_ticket(self, _: m.GetClusterTicket) -> m.ClusterTicketResult:
        ticket = self.ticket()
        return m.ClusterTicketResult(
            ticket=ticket.encode(), endpoint_id=self.me.endpoint_id, bootstrap_peers=len(ticket.peers)
        )

    async def _init_cluster(self, _: m.InitCluster) -> m.InitResult:
        try:
            await self.raft.bootstrap()
        except AlreadyInitialized:
            return m.InitResult(is_success=False, error="cluster already initialized")
        # Record our own address in the log (a no-op re-add), so every member that ever joins learns
        # how to reach the founder from the replicated membership.
        await self.raft.change_membership(
            ConfChange(ConfChangeType.ADD_VOTER, self.me.node_id, self.me.endpoint_addr_json())
        )
        return m.InitResult(is_success=True)

    async def _add_learner(self, req: m.AddLearner) -> m.AddLearnerResult:
        try:
            addr = parse_endpoint_addr(req.addr)
            await add_learner(self.raft, req.node_id, addr)
        except MembershipError as err:
            return m.AddLearnerResult(is_success=False, error=str(err))
        return m.AddLearnerResult(is_success=True)

    async def _change_membership(self, req: m.ChangeMembership) -> m.ChangeMembershipResult:
        try:
            await change_voters(self.raft, list(req.members))
        except MembershipError as err:
            return m.ChangeMembershipResult(is_success=False, error=str(err))
        return m.ChangeMembershipResult(is_success=True)

    async def _promote_learner(self, req: m.PromoteLearner) -> m.PromoteLearnerResult:
        previous = list(self.raft.conf_state.voters)
        try:
            conf = await promote(self.raft, req.learner_id, req.replace_node)
        except MembershipError as err:
            return m.PromoteLearnerResult(
                is_success=False,
                learner_id=req.learner_id,
                previous_voters=previous,
                new_voters=list(self.raft.conf_state.voters),
                message="promotion failed",
                error=str(err),
            )
        return m.PromoteLearnerResult(
            is_success=True,
            learner_id=req.learner_id,
            previous_voters=previous,
            new_voters=list(conf.voters),
            message=f"promoted learner {req.learner_id} to voter",
        )

    async def _cluster_state(self, _: m.GetClusterState) -> m.ClusterState:
        conf = self.raft.conf_state
        leader = self.raft.leader_id
        nodes = []
        for node_id, is_voter in [(v, True) for v in conf.voters] + [(ln, False) for ln in conf.learners]:
            if node_id == self.me.node_id:
                addr = self.me.endpoint_addr_json().decode()
            else:
                addr = self.raft.members.get(node_id, b"").decode() or "unknown"
            nodes.append(
                m.NodeDescriptor(
                    node_id=node_id,
                    endpoint_addr=addr,
                    is_voter=is_voter,
                    is_learner=not is_voter,
                    is_leader=node_id == leader,
                )
            )
        return m.ClusterState(nodes=nodes[:16], leader_id=leader or None, this_node_id=self.me.node_id)

    async def _metrics(self, _: m.GetMetrics) -> m.Metrics:
        return m.Metrics(prometheus_text=self.metrics.render(self))

    async def _state_hash(self, _: m.GetStateHash) -> m.StateHash:
        kv_state = self.state.kv
        return m.StateHash(
            applied_index=self.raft.applied_index, state_hash=kv_state.state_hash(), key_count=len(kv_state)
        )

    async def _trigger_snapshot(self, _: m.TriggerSnapshot) -> m.SnapshotResult:
        index = await self.raft.trigger_snapshot()
        return m.SnapshotResult(is_success=True, snapshot_index=index)

    async def _snapshot_save(self, _: m.SnapshotSave) -> m.SnapshotSaveResult:
        """A backup image at a ReadIndex point (see aspen.node.backup for the format)."""
        await self._barrier(False)
        # Taken in one synchronous step: nothing applies meanwhile, so the image is a consistent cut.
        kv_image, index = self.state.kv.snapshot(), self.raft.applied_index
        data = await asyncio.to_thread(
            encode_image, kv_image, index, self.me.node_id, int(time.time() * 1000)
        )
        export_id, export = self.exports.add(data, index, time.monotonic())
        return m.SnapshotSaveResult(
            snapshot_id=export_id,
            node_id=self.me.node_id,
            applied_index=index,
            total_bytes=len(data),
            checksum=export.checksum,
        )

    async def _snapshot_chunk(self, req: m.GetSnapshotChunk) -> m.SnapshotChunk:
        found = self.exports.chunk(req.snapshot_id, req.offset, time.monotonic())
        if found is None:
            raise InvalidRequestError(
                f"unknown or expired snapshot id on node {self.me.node_id}; run `snapshot save` again"
            )
        data, export = found
        return m.SnapshotChunk(
            snapshot_id=req.snapshot_id,
            offset=req.offset,
            data=data,
            total_bytes=len(export.data),
            is_last=req.offset + len(data) >= len(export.data),
            applied_index=export.applied_index,
            checksum=export.checksum,
        )

    # ------------------------------------------------------------------------------------- kv --
    async def _read_key(self, req: m.ReadKey) -> m.ReadResult:
        await self._barrier(req.stale)
        res = self.state.kv.read(kv.Read(req.key))
        return m.ReadResult(value=res.value, was_found=res.was_found)

    async def _write_key(self, req: m.WriteKey) -> m.WriteResult:
        cmd = kv.Write(req.key, req.value)
        error = kv.validate(cmd)
        if error is not None:
            return m.WriteResult(is_success=False, error=error)
        res = await self._propose_kv(cmd, len(req.key) + len(req.value))
        return m.WriteResult(is_success=res.is_success, error=res.error)

    async def _delete_key(self, req: m.DeleteKey) -> m.DeleteResult:
        cmd = kv.Delete(req.key)
        error = kv.validate(cmd)
        if error is not None:
            return m.DeleteResult(key=req.key, was_deleted=False, error=error)
        res = await self._propose_kv(cmd, len(req.key))
        return m.DeleteResult(key=res.key, was_deleted=res.was_deleted, error=res.error)

    async def _cas(self, req: m.CompareAndSwapKey) -> m.CompareAndSwapResult:
        return await self._compare(
            kv.CompareAndSwap(req.key, req.expected, req.new_value), len(req.key) + len(req.new_value)
        )

    async def _cad(self, req: m.CompareAndDeleteKey) -> m.CompareAndSwapResult:
        return await self._compare(kv.CompareAndDelete(req.key, req.expected), len(req.key))

    async def _compare(
        self, cmd: kv.CompareAndSwap | kv.CompareAndDelete, size: int
    ) -> m.CompareAndSwapResult:
        error = kv.validate(cmd)
        if error is not None:
            return m.CompareAndSwapResult(is_success=False, error=error)
        res = await self._propose_kv(cmd, size)
        return m.CompareAndSwapResult(
            is_success=res.is_success, actual_value=res.actual_value, error=res.error
        )

    async def _scan(self, req: m.ScanKeys) -> m.ScanResult:
        inside = kv.reserved_prefix(req.prefix)
        if inside is not None and not req.include_internal:
            # Answering "no keys" would be a lie; naming the switch is the useful answer.
            raise InvalidRequestError(
                f"prefix {req.prefix!r} is in the reserved prefix {inside.prefix!r} (owned by "
                f"{inside.owner}); scan it with include_internal (aspen-cli kv scan --include-internal)"
            )
        await self._barrier(req.stale)
        res = self.state.kv.scan(
            kv.Scan(req.prefix, req.limit, req.continuation_token, include_internal=req.include_internal)
        )
        return m.ScanResult(
            entries=[
                m.ScanEntry(
                    key=e.key,
                    value=e.value,
                    version=e.version,
                    create_revision=e.create_revision,
                    mod_revision=e.mod_revision,
                )
                for e in res.entries
            ],
            count=res.count,
            is_truncated=res.is_truncated,
            continuation_token=res.continuation_token,
        )

    async def _batch_read(self, req: m.BatchRead) -> m.BatchReadResult:
        await self._barrier(req.stale)
        res = self.state.kv.batch_read(kv.BatchRead(tuple(req.keys)))
        return m.BatchReadResult(is_success=True, values=list(res.values))

    @staticmethod
    def _ops(operations: list[m.SetOperation | m.DeleteOperation]) -> tuple[kv.SetOp | kv.DeleteOp, ...]:
        return tuple(
            kv.SetOp(op.key, op.value) if isinstance(op, m.SetOperation) else kv.DeleteOp(op.key)
            for op in operations
        )

    @staticmethod
    def _size(operations: list[m.SetOperation | m.DeleteOperation]) -> int:
        return sum(
            len(op.key) + len(op.value) if isinstance(op, m.SetOperation) else len(op.key)
            for op in operations
        )

    async def _batch_write(self, req: m.BatchWrite) -> m.BatchWriteResult:
        cmd = kv.BatchWrite(self._ops(req.operations))
        error = kv.validate(cmd)
        if error is not None:
            return m.BatchWriteResult(is_success=False, operations_applied=0, error=error)
        res = await self._propose_kv(cmd, self._size(req.operations))
        return m.BatchWriteResult(
            is_success=res.is_success, operations_applied=res.operations_applied, error=res.error
        )

    async def _conditional_batch_write(self, req: m.ConditionalBatchWrite) -> m.ConditionalBatchWriteResult:
        conditions = tuple(
            kv.ValueEquals(c.key, c.expected)
            if isinstance(c, m.ValueEquals)
            else kv.KeyExists(c.key)
            if isinstance(c, m.KeyExists)
            else kv.KeyNotExists(c.key)
            for c in req.conditions
        )
        cmd = kv.ConditionalBatchWrite(conditions, self._ops(req.operations))
        error = kv.validate(cmd)
        if error is not None:
            return m.ConditionalBatchWriteResult(
                is_success=False, conditions_met=False, operations_applied=0, error=error
            )
        size = self._size(req.operations) + sum(len(c.key) for c in req.conditions)
        res = await self._propose_kv(cmd, size)
        return m.ConditionalBatchWriteResult(
            is_success=res.is_success,
            conditions_met=res.conditions_met,
            operations_applied=res.operations_applied,
            failed_condition_index=res.failed_condition_index,
            failed_condition_reason=res.failed_condition_reason,
            error=res.error,
        )
