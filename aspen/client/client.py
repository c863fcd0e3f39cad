"""`AspenClient`: the async Python client of Aspen, used by `aspen-cli`.

It holds one pooled QUIC connection per ticket peer and routes each request to the peer that last
answered. Failures are handled as the original Aspen's client handles them, with one safety rule
added:

- `NOT_LEADER` (no leader known to that node): move to the next peer at once.
- `NOT_INITIALIZED`: back off 100 → 1600 ms on the same peer, then move on.
- Transport failure *before* the request left (connect failure, wrong endpoint key): next peer.
- Transport failure *after* it may have left: reads are retried elsewhere; a write raises
  `OutcomeUnknownError`, because repeating a CAS or batch could apply it twice.

Every loop is bounded by the per-request deadline and a maximum number of attempts.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import blake3

from aspen.api import messages as m
from aspen.api.codec import decode_response, encode_request, raise_for_error
from aspen.api.errors import (
    AspenError,
    ConnectionFailedError,
    InvalidRequestError,
    NotInitializedError,
    NotLeaderError,
    OutcomeUnknownError,
    ServiceUnavailableError,
)
from aspen.api.lease_messages import LEASE_READS
from aspen.api.operation import OPERATIONS
from aspen.client.blobs import BLOB_IDEMPOTENT, BlobOps
from aspen.client.coordination import CoordinationMixin
from aspen.client.election import Election
from aspen.client.leases import LeaseMethods
from aspen.client.locks import LockMixin
from aspen.client.operations import OperationCalls
from aspen.rpc.auth import proof_key
from aspen.rpc.client import RpcClient
from aspen.rpc.errors import EndpointMismatchError, RpcConnectError, RpcTimeoutError, RpcTransportError
from aspen.rpc.ticket import ClusterTicket, parse_host_port

R = TypeVar("R")

DEFAULT_TIMEOUT_S = 30.0
#: Requests that change nothing, so retrying them on another node after an ambiguous failure is safe.
IDEMPOTENT = frozenset(
    {
        "GetHealth",
        "GetRaftMetrics",
        "GetLeader",
        "GetNodeInfo",
        "GetClusterTicket",
        "Ping",
        "GetClusterState",
        "GetMetrics",
        "GetStateHash",
        "SnapshotSave",
        "GetSnapshotChunk",
        "ReadKey",
        "ScanKeys",
        "BatchRead",
    }
    | BLOB_IDEMPOTENT
)
#: Lease reads are as safe to retry elsewhere (aspen.api.lease_messages).
IDEMPOTENT |= LEASE_READS
_NOT_INITIALIZED_BACKOFF_S = (0.1, 0.2, 0.4, 0.8, 1.6)
_TRANSPORT_RETRY_S = 0.2
_MAX_ATTEMPTS = 24


def _not_utf8(value: object, path: str) -> str | None:
    """The path of the first string in `value` that has no UTF-8 form (a lone surrogate, as
    Python makes of undecodable command-line bytes), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "a string"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _not_utf8(item, f"{path}[{name}]" if isinstance(name, int) else f"{path}.{name}".lstrip("."))
        if found is not None:
            return found
    return None


def _encode(request: m.Request, rid: str | None) -> bytes:
    """The request's frame; what pydantic accepts but msgpack cannot encode (a str without UTF-8,
    an int beyond 64 bits) is refused here, before anything is sent, as `InvalidRequestError`."""
    try:
        return encode_request(request, rid=rid)
    except UnicodeEncodeError:
        where = _not_utf8(request.model_dump(), "")
        raise InvalidRequestError(f"{where} is not valid UTF-8") from None
    except (OverflowError, ValueError, TypeError) as err:
        raise InvalidRequestError(f"invalid {request.type}: cannot encode ({err})") from None


def load_ticket(ticket: str | ClusterTicket | Path) -> ClusterTicket:
    if isinstance(ticket, ClusterTicket):
        return ticket
    if isinstance(ticket, Path):
        return ClusterTicket.decode(ticket.read_text())
    return ClusterTicket.decode(ticket)


class AspenClient(CoordinationMixin, LockMixin, LeaseMethods, BlobOps, OperationCalls):
    """Async client for one cluster. Use as `async with AspenClient(ticket) as client:`."""

    def __init__(
        self,
        ticket: str | ClusterTicket | Path,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        request_id: str | None = None,
    ) -> None:
        self.ticket = load_ticket(ticket)
        self.timeout = timeout
        #: Sent in every request's envelope (`rid`, ≤ 64 chars); nodes log it on failures and slow
        #: requests, so one invocation can be traced through the cluster's logs.
        self.request_id = request_id
        key = proof_key(self.ticket.cookie)
        self._peers = [
            RpcClient(p.endpoint_id, [parse_host_port(a) for a in p.addrs], auth_key=key)
            for p in self.ticket.peers
        ]
        self._current = 0

    def election(self, name: str, *, candidate_id: str | None = None, ttl_ms: int = 10_000) -> Election:
        """A candidate in leader election `name` (a recipe over locks: aspen.client.election)."""
        return Election(self, name, candidate_id=candidate_id, ttl_ms=ttl_ms)

    async def __aenter__(self) -> AspenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._peers), return_exceptions=True)

    # ----------------------------------------------------------------------------- transport --
    async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response:
        """Send one request, following the rotation rules above; returns a non-error response."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        frame = _encode(request, self.request_id)
        spec = OPERATIONS.get(request.type)
        idempotent = spec.kind.is_read if spec is not None else request.type in IDEMPOTENT
        last: AspenError | None = None
        not_init_tries = 0
        attempts = 0
        while attempts < _MAX_ATTEMPTS:
            attempts += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            peer = self._peers[self._current]
            try:
                raw = await peer.request(frame, timeout=remaining)
                return raise_for_error(decode_response(raw))
            except NotLeaderError as err:
                last = err
                self._rotate()
                if attempts % len(self._peers) == 0:  # a full round without a leader: let elections run
                    await self._pause(0.2, deadline)
            except NotInitializedError as err:
                last = err
                if not_init_tries < len(_NOT_INITIALIZED_BACKOFF_S):
                    await self._pause(_NOT_INITIALIZED_BACKOFF_S[not_init_tries], deadline)
                    not_init_tries += 1
                else:
                    not_init_tries = 0
                    self._rotate()
            except ServiceUnavailableError as err:
                last = err
                self._rotate()
            except EndpointMismatchError as err:
                last = ConnectionFailedError(f"{peer.describe()}: {err}")
                self._rotate()
            except RpcConnectError as err:
                last = ConnectionFailedError(f"cannot reach {peer.describe()}: {err}")
                self._rotate()
                if attempts % len(self._peers) == 0:
                    await self._pause(_TRANSPORT_RETRY_S, deadline)
            except RpcTimeoutError as err:
                if not idempotent:
                    raise OutcomeUnknownError(
                        f"no answer within {int(budget * 1000)}ms; the write may or may not have been applied"
                    ) from err
                if not isinstance(last, NotInitializedError | NotLeaderError):
                    # A node's own answer says more than an attempt that ran out of the deadline's
                    # last milliseconds (e.g. the final retry after backing off on NOT_INITIALIZED).
                    last = OutcomeUnknownError(f"no answer from {peer.describe()} in time")
                self._rotate()
            except RpcTransportError as err:
                if not idempotent:
                    raise OutcomeUnknownError(
                        f"connection to {peer.describe()} failed mid-request ({err}); "
                        "the write may or may not have been applied"
                    ) from err
                last = ConnectionFailedError(f"{peer.describe()}: {err}")
                self._rotate()
                await self._pause(_TRANSPORT_RETRY_S, deadline)
        if last is None:
            last = OutcomeUnknownError(f"request timed out after {int(budget * 1000)}ms")
        raise last

    def _rotate(self) -> None:
        self._current = (self._current + 1) % len(self._peers)

    @staticmethod
    async def _pause(seconds: float, deadline: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

    async def _call(self, request: m.Request, kind: type[R]) -> R:
        response = await self.request(request)
        if not isinstance(response, kind):
            raise ServiceUnavailableError(f"unexpected response {response.type} to {request.type}")
        return response

    # ------------------------------------------------------------------------------------- kv --
    async def read(self, key: str, *, stale: bool = False) -> m.ReadResult:
        return await self._call(m.ReadKey(key=key, stale=stale), m.ReadResult)

    async def get(self, key: str, *, stale: bool = False) -> bytes | None:
        """The value of `key`, or None if it does not exist."""
        return (await self.read(key, stale=stale)).value

    async def set(self, key: str, value: bytes) -> m.WriteResult:
        return await self._call(m.WriteKey(key=key, value=value), m.WriteResult)

    async def delete(self, key: str) -> m.DeleteResult:
        return await self._call(m.DeleteKey(key=key), m.DeleteResult)

    async def compare_and_swap(
        self, key: str, expected: bytes | None, new_value: bytes
    ) -> m.CompareAndSwapResult:
        return await self._call(
            m.CompareAndSwapKey(key=key, expected=expected, new_value=new_value), m.CompareAndSwapResult
        )

    async def compare_and_delete(self, key: str, expected: bytes) -> m.CompareAndSwapResult:
        return await self._call(m.CompareAndDeleteKey(key=key, expected=expected), m.CompareAndSwapResult)

    async def scan(
        self,
        prefix: str = "",
        *,
        limit: int | None = None,
        continuation_token: str | None = None,
        stale: bool = False,
        include_internal: bool = False,
    ) -> m.ScanResult:
        """One page of keys starting with `prefix`. Keys under the reserved prefixes (`__coord:`,
        `_system:`) are skipped unless `include_internal`; a `prefix` inside one needs it."""
        request = m.ScanKeys(
            prefix=prefix,
            limit=limit,
            continuation_token=continuation_token,
            stale=stale,
            include_internal=include_internal,
        )
        return await self._call(request, m.ScanResult)

    async def batch_read(self, keys: Sequence[str], *, stale: bool = False) -> m.BatchReadResult:
        return await self._call(m.BatchRead(keys=list(keys), stale=stale), m.BatchReadResult)

    async def batch_write(
        self, operations: Sequence[m.SetOperation | m.DeleteOperation]
    ) -> m.BatchWriteResult:
        return await self._call(m.BatchWrite(operations=list(operations)), m.BatchWriteResult)

    async def conditional_batch_write(
        self,
        conditions: Sequence[m.ValueEquals | m.KeyExists | m.KeyNotExists],
        operations: Sequence[m.SetOperation | m.DeleteOperation],
    ) -> m.ConditionalBatchWriteResult:
        return await self._call(
            m.ConditionalBatchWrite(conditions=list(conditions), operations=list(operations)),
            m.ConditionalBatchWriteResult,
        )

    # -------------------------------------------------------------------------------- cluster --
    async def init_cluster(self) -> m.InitResult:
        return await self._call(m.InitCluster(), m.InitResult)

    async def health(self) -> m.Health:
        return await self._call(m.GetHealth(), m.Health)

    async def raft_metrics(self) -> m.RaftMetrics:
        return await self._call(m.GetRaftMetrics(), m.RaftMetrics)

    async def cluster_state(self) -> m.ClusterState:
        return await self._call(m.GetClusterState(), m.ClusterState)

    async def cluster_ticket(self) -> m.ClusterTicketResult:
        return await self._call(m.GetClusterTicket(), m.ClusterTicketResult)

    async def metrics(self) -> m.Metrics:
        return await self._call(m.GetMetrics(), m.Metrics)

    async def leader(self) -> m.Leader:
        return await self._call(m.GetLeader(), m.Leader)

    async def ping(self) -> m.Pong:
        return await self._call(m.Ping(), m.Pong)

    async def add_learner(self, node_id: int, addr: str) -> m.AddLearnerResult:
        """Add a learner; `addr` is EndpointAddr JSON. Returns once the learner has caught up."""
        return await self._call(m.AddLearner(node_id=node_id, addr=addr), m.AddLearnerResult)

    async def change_membership(self, members: Sequence[int]) -> m.ChangeMembershipResult:
        """Make the voter set exactly `members` (learners are promoted, others removed)."""
        return await self._call(m.ChangeMembership(members=list(members)), m.ChangeMembershipResult)

    async def promote_learner(
        self, learner_id: int, *, replace_node: int | None = None, force: bool = False
    ) -> m.PromoteLearnerResult:
        return await self._call(
            m.PromoteLearner(learner_id=learner_id, replace_node=replace_node, is_force=force),
            m.PromoteLearnerResult,
        )

    async def state_hash(self) -> m.StateHash:
        """The contacted node's applied index and state-machine hash (replicas agree when equal)."""
        return await self._call(m.GetStateHash(), m.StateHash)

    async def trigger_snapshot(self) -> m.SnapshotResult:
        return await self._call(m.TriggerSnapshot(), m.SnapshotResult)

    async def snapshot_save(
        self, dest: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> m.SnapshotSaveResult:
        """Save a consistent backup of the cluster's KV state to `dest` (online).

        The contacted node serialises its state at a ReadIndex point; the bytes come in chunks from
        that same node into `dest` + ".part", are checked against the node's BLAKE3 checksum, fsynced
        and only then renamed to `dest`. `progress(done, total)` is called after each chunk. Raises
        `AspenError` (nothing is left at `dest`) if the transfer fails or the checksum differs."""
        meta = await self._call(m.SnapshotSave(), m.SnapshotSaveResult)
        part = dest.with_name(dest.name + ".part")
        hasher = blake3.blake3()
        offset = 0
        try:
            # 0600 whatever the umask: a backup holds every value of the cluster.
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # a leftover .part keeps the mode it was created with
            with open(fd, "wb") as out:
                # Bounded: each chunk advances by ≥ 1 byte or ends the loop.
                for _ in range(meta.total_bytes + 1):
                    chunk = await self._call(
                        m.GetSnapshotChunk(snapshot_id=meta.snapshot_id, offset=offset), m.SnapshotChunk
                    )
                    out.write(chunk.data)
                    hasher.update(chunk.data)
                    offset += len(chunk.data)
                    if progress is not None:
                        progress(offset, meta.total_bytes)
                    if chunk.is_last or not chunk.data:
                        break
                out.flush()
                os.fsync(out.fileno())
            if offset != meta.total_bytes or hasher.hexdigest() != meta.checksum:
                raise ServiceUnavailableError(
                    f"snapshot transfer corrupted: got {offset} of {meta.total_bytes} bytes, "
                    f"checksum {hasher.hexdigest()} != {meta.checksum}"
                )
            os.replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return meta
