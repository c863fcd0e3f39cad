"""The node's blob service: request handlers, the bulk data channels, replication, repair and GC.

Where things live (DESIGN §4, reference §2):

* Bytes: this node's `BlobStore` (`<data_dir>/blobs`). They never go through Raft.
* Metadata: which nodes hold a hash and its replication policy, as a JSON record in the KV store
  (`aspen.blob.policy`), written by compare-and-swap through Raft (a follower forwards to the leader).
* Transfers: client ↔ node over channel `BLOB_CLIENT_CHANNEL` with a one-time token issued by the
  QUIC RPC (`aspen.rpc.bulk`); node ↔ node over `BLOB_PEER_CHANNEL`, authenticated by member keys.

Invariants:

* Handlers answer for the contacted node only; a node lacking a blob finds holders in the metadata
  and fetches from one (read-through). Read-through copies are untagged: GC drops them after the
  grace period, so they never count as replicas and never inflate the metadata.
* This node lists itself in a blob's record only while it has a complete, hash-verified copy tagged
  `_store:` (added here) or `_replica:` (replicated here); it removes itself when the copy goes.
* Every received blob is hashed while it arrives and published only if the hash matches (the store
  guarantees no partial blob is ever visible). A copy found corrupt (when served, scrubbed or
  repaired) is discarded at once and fetched again from a good holder.
* Every transfer is bounded: a token expires, each read/write must progress within
  `transfer_idle_s`, at most `max_concurrent_transfers` run at once, memory is a few chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import msgpack

from aspen import kv
from aspen.api import blob_messages as b
from aspen.api import messages as m
from aspen.api.errors import AspenError
from aspen.blob.config import BlobConfig
from aspen.blob.policy import (
    META_PREFIX,
    REPLICA_TAG_PREFIX,
    STORE_TAG_PREFIX,
    USER_TAG_PREFIX,
    ReplicaRecord,
    ReplicationPolicy,
    choose_targets,
    classify,
    default_factor,
    meta_key,
    repair_order,
    replicas_needed,
    user_tag,
)
from aspen.blob.store import (
    BlobInfo,
    BlobStore,
    BlobTooLargeError,
    HashMismatchError,
    PendingBlob,
    is_valid_hash,
    new_hasher,
)
from aspen.blob.ticket import BlobTicket
from aspen.node.membership import MembershipError, parse_endpoint_addr
from aspen.node.service import NodeIdentityInfo, NodeService
from aspen.node.state import NodeStateMachine
from aspen.raft.core.types import StateRole
from aspen.raft.errors import RaftError
from aspen.raft.net import TcpTransport
from aspen.raft.node import RaftNode
from aspen.rpc.bulk import BLOB_CLIENT_CHANNEL, BLOB_PEER_CHANNEL, CHUNK, TOKEN_SIZE

__all__ = ["BlobService"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[Any]]
Submit = Callable[[m.Request], Awaitable[m.Response]]

NOT_ENABLED = "blob store not enabled"
_LEN = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")
MAX_CONTROL_FRAME = 64 * 1024
CAS_ATTEMPTS = 16
META_TIMEOUT_S = 10.0
LIST_MAX = 1000


class TransferError(Exception):
    """A node-to-node transfer failed (the next provider may still succeed)."""


@dataclass(frozen=True, slots=True)
class _Token:
    upload: bool
    digest: str | None
    size: int
    tag: str | None
    expires: float


#: How a data channel ends early: the peer broke off, stalled, or refused.
_CHANNEL_ERRORS = (TransferError, asyncio.IncompleteReadError, OSError, TimeoutError)


class _Partial:
    """A fetch's partly received blob, kept across providers so the next one resumes it."""

    def __init__(self) -> None:
        self.pending: PendingBlob | None = None

    def reset(self) -> None:
        if self.pending is not None:
            self.pending.abort()
            self.pending = None


def _now_micros() -> int:
    return int(time.time() * 1_000_000)


async def _write_frame(writer: asyncio.StreamWriter, doc: dict[str, Any], idle: float) -> None:
    payload = msgpack.packb(doc, use_bin_type=True)
    writer.write(_LEN.pack(len(payload)) + payload)
    async with asyncio.timeout(idle):
        await writer.drain()


async def _read_frame(reader: asyncio.StreamReader, idle: float) -> dict[str, Any]:
    async with asyncio.timeout(idle):
        (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
        if length > MAX_CONTROL_FRAME:
            raise TransferError(f"control frame of {length} bytes is too large")
        doc = msgpack.unpackb(await reader.readexactly(length), raw=False)
    if not isinstance(doc, dict):
        raise TransferError("malformed control frame")
    return doc


class BlobService:
    def __init__(
        self,
        *,
        config: BlobConfig,
        data_dir: Path,
        node_id: int,
        endpoint_id: str,
        addrs: tuple[str, ...],
        raft: RaftNode,
        kv_state: Callable[[], kv.KvStateMachine],
        transport: TcpTransport,
        submit: Submit,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.endpoint_id = endpoint_id
        self.addrs = addrs
        self.raft = raft
        self._kv = kv_state
        self.transport = transport
        self._submit = submit
        self.store: BlobStore | None = (
            BlobStore(data_dir / "blobs", max_size=config.max_size, now=time.time())
            if config.enabled
            else None
        )
        self._tokens: dict[bytes, _Token] = {}
        self._slots = asyncio.Semaphore(config.max_concurrent_transfers)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        #: One in-flight fetch per hash: concurrent readers of a missing blob share it.
        self._fetching: dict[str, asyncio.Future[BlobInfo]] = {}
        self._repair_running = False

    # ------------------------------------------------------------------------------ lifecycle --
    def handlers(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "AddBlob": self._add_blob,
            "StartBlobUpload": self._start_upload,
            "GetBlob": self._get_blob,
            "HasBlob": self._has_blob,
            "GetBlobTicket": self._blob_ticket,
            "ListBlobs": self._list_blobs,
            "ProtectBlob": self._protect,
            "UnprotectBlob": self._unprotect,
            "DeleteBlob": self._delete,
            "DownloadBlob": self._download_ticket,
            "DownloadBlobByHash": self._download_by_hash,
            "DownloadBlobByProvider": self._download_by_provider,
            "GetBlobStatus": self._status,
            "BlobReplicatePull": self._replicate_pull,
            "GetBlobReplicationStatus": self._replication_status,
            "TriggerBlobReplication": self._trigger_replication,
            "RunBlobRepairCycle": self._repair_cycle,
        }
        if self.store is None:
            return {name: self._disabled for name in table}
        return table

    def start(self) -> None:
        if self.store is None:
            return
        self.transport.register_channel(BLOB_PEER_CHANNEL, self._serve_peer)
        self.transport.register_open_channel(BLOB_CLIENT_CHANNEL, self._authenticate_client)
        self._loops.append(asyncio.create_task(self._gc_loop(), name="blob-gc"))
        self._loops.append(asyncio.create_task(self._repair_loop(), name="blob-repair"))

    async def close(self) -> None:
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _store(self) -> BlobStore:
        assert self.store is not None
        return self.store

    # ------------------------------------------------------------------------------ metadata --
    async def read_record(self, digest: str) -> tuple[ReplicaRecord | None, bytes | None]:
        """The replica record of `digest` at a linearizable point (and its raw value, for CAS)."""
        await self.raft.read_barrier(timeout=META_TIMEOUT_S)
        raw = self._kv().read(kv.Read(meta_key(digest))).value
        if raw is None:
            return None, None
        try:
            return ReplicaRecord.decode(raw), raw
        except ValueError:
            log.warning("unreadable blob replica record", extra={"hash": digest})
            return None, raw

    async def _update_record(
        self, digest: str, change: Callable[[ReplicaRecord | None], ReplicaRecord | None]
    ) -> None:
        """Apply `change` to the record by compare-and-swap, retrying on conflicts. `change` returns
        None for "no change"; a record left with no node is deleted."""
        key = meta_key(digest)
        for _ in range(CAS_ATTEMPTS):
            current, raw = await self.read_record(digest)
            new = change(current)
            if new is None:
                return
            if new.nodes:
                res = await self._submit(m.CompareAndSwapKey(key=key, expected=raw, new_value=new.encode()))
            elif raw is not None:
                res = await self._submit(m.CompareAndDeleteKey(key=key, expected=raw))
            else:
                return
            if isinstance(res, m.CompareAndSwapResult) and res.is_success:
                return
        raise TransferError(f"could not update the replica record of {digest} (too many conflicts)")

    def _default_policy(self) -> ReplicationPolicy:
        factor = self.config.replication_factor or default_factor(len(self.raft.conf_state.voters))
        return ReplicationPolicy.for_factor(factor)

    async def record_holder(self, digest: str, size: int) -> None:
        def add(rec: ReplicaRecord | None) -> ReplicaRecord | None:
            if rec is None:
                return ReplicaRecord(digest, size, (self.node_id,), self._default_policy(), _now_micros())
            if self.node_id in rec.nodes:
                return None
            return rec.with_node(self.node_id, _now_micros())

        await self._update_record(digest, add)

    async def forget_holder(self, digest: str) -> None:
        def drop(rec: ReplicaRecord | None) -> ReplicaRecord | None:
            if rec is None or self.node_id not in rec.nodes:
                return None
            return rec.without_node(self.node_id, _now_micros())

        await self._update_record(digest, drop)

    async def _record_quietly(self, digest: str, size: int) -> None:
        try:
            await self.record_holder(digest, size)
        except (AspenError, RaftError, TransferError) as err:
            log.warning("could not record blob holder", extra={"hash": digest, "error": str(err)})

    def _members(self) -> list[int]:
        conf = self.raft.conf_state
        return sorted({*conf.voters, *conf.learners})

    def _node_of_endpoint(self, endpoint_id: str) -> int | None:
        for node_id, context in self.raft.members.items():
            try:
                if parse_endpoint_addr(context).endpoint_id == endpoint_id.lower():
                    return node_id
            except (MembershipError, ValueError):
                continue
        return None

    # ------------------------------------------------------------------------------ handlers --
    async def _disabled(self, req: Any) -> Any:
        return _failure(req, NOT_ENABLED)

    async def _add_blob(self, req: b.AddBlob) -> b.AddBlobResult:
        tag = user_tag(req.tag) if req.tag else None
        try:
            info, was_new = await asyncio.to_thread(self._add_bytes, req.data, tag)
        except (BlobTooLargeError, OSError) as err:
            return b.AddBlobResult(is_success=False, error=str(err))
        await self._after_add(info)
        return b.AddBlobResult(is_success=True, hash=info.hash, size_bytes=info.size_bytes, was_new=was_new)

    def _add_bytes(self, data: bytes, tag: str | None) -> tuple[BlobInfo, bool]:
        info, was_new = self._store.add_bytes(data, tag=tag, now=time.time())
        self._store.set_tag(STORE_TAG_PREFIX + info.hash, info.hash, now=time.time())
        return info, was_new

    async def _after_add(self, info: BlobInfo) -> None:
        """Record this node as a holder (so other nodes find the blob at once), then replicate in the
        background until the replication factor is met."""
        await self._record_quietly(info.hash, info.size_bytes)
        self._spawn(self.replicate(info.hash, info.size_bytes), f"blob-replicate-{info.hash[:8]}")

    async def _start_upload(self, req: b.StartBlobUpload) -> b.BlobUploadReady | b.AddBlobResult:
        if req.size_bytes > self._store.max_size:
            return b.AddBlobResult(
                is_success=False,
                error=f"blob of {req.size_bytes} bytes exceeds the limit of {self._store.max_size} bytes",
            )
        token = self._issue(_Token(True, None, req.size_bytes, req.tag, 0.0))
        return b.BlobUploadReady(transfer=self._transfer(token, req.size_bytes))

    def _issue(self, spec: _Token) -> bytes:
        now = time.monotonic()
        for old in [t for t, s in self._tokens.items() if s.expires < now]:
            del self._tokens[old]
        token = secrets.token_bytes(TOKEN_SIZE)
        self._tokens[token] = _Token(
            spec.upload, spec.digest, spec.size, spec.tag, now + self.config.token_ttl_s
        )
        return token

    def _transfer(self, token: bytes, size: int) -> b.BlobTransfer:
        return b.BlobTransfer(
            token=token, endpoint_id=self.endpoint_id, addrs=list(self.addrs), size_bytes=size
        )

    async def _get_blob(self, req: b.GetBlob) -> b.GetBlobResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobResult(was_found=False, error=f"invalid hash: {req.hash!r}")
        info = await self._local_or_fetch(req.hash)
        if info is None:
            return b.GetBlobResult(was_found=False, error=f"blob not found: {req.hash}")
        if info.size_bytes <= b.BLOB_INLINE_THRESHOLD:
            data = await asyncio.to_thread(self._store.read_bytes, req.hash)
            if blake3.blake3(data).hexdigest() != req.hash:
                await self._quarantine(req.hash)
                info = await self._local_or_fetch(req.hash)
                if info is None:
                    return b.GetBlobResult(was_found=False, error=f"blob not found: {req.hash}")
                data = await asyncio.to_thread(self._store.read_bytes, req.hash)
            return b.GetBlobResult(was_found=True, data=data, size_bytes=len(data))
        token = self._issue(_Token(False, req.hash, info.size_bytes, None, 0.0))
        return b.GetBlobResult(
            was_found=True,
            is_streaming=True,
            size_bytes=info.size_bytes,
            transfer=self._transfer(token, info.size_bytes),
        )

    async def _local_or_fetch(self, digest: str) -> BlobInfo | None:
        """The local copy, or one fetched from a holder named in the metadata (read-through, untagged)."""
        size = self._store.size_of(digest)
        if size is not None:
            return BlobInfo(digest, size)
        record, _ = await self.read_record(digest)
        if record is None:
            return None
        holders = [n for n in record.nodes if n != self.node_id]
        try:
            return await self.fetch(digest, holders, tag=None)
        except TransferError as err:
            log.warning("read-through fetch failed", extra={"hash": digest, "error": str(err)})
            return None

    async def _has_blob(self, req: b.HasBlob) -> b.HasBlobResult:
        if not is_valid_hash(req.hash):
            return b.HasBlobResult(does_exist=False, error=f"invalid hash: {req.hash!r}")
        if self._store.has(req.hash):
            return b.HasBlobResult(does_exist=True)
        record, _ = await self.read_record(req.hash)
        return b.HasBlobResult(does_exist=record is not None and bool(record.nodes))

    async def _blob_ticket(self, req: b.GetBlobTicket) -> b.GetBlobTicketResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobTicketResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        record, _ = await self.read_record(req.hash)
        size = self._store.size_of(req.hash)
        holders = set(record.nodes) if record is not None else set()
        if size is not None:
            holders.add(self.node_id)
        if not holders:
            return b.GetBlobTicketResult(is_success=False, error=f"blob not found: {req.hash}")
        providers = []
        for node_id in sorted(holders):
            if node_id == self.node_id:
                providers.append(self.endpoint_id)
            elif node_id in self.raft.members:
                providers.append(parse_endpoint_addr(self.raft.members[node_id]).endpoint_id)
        total = size if size is not None else (record.size if record is not None else 0)
        return b.GetBlobTicketResult(
            is_success=True, ticket=BlobTicket(req.hash, total, tuple(providers[:16])).encode()
        )

    async def _list_blobs(self, req: b.ListBlobs) -> b.ListBlobsResult:
        limit = min(req.limit, LIST_MAX)
        after = req.continuation_token
        if after is not None and not is_valid_hash(after):
            return b.ListBlobsResult(
                blobs=[], count=0, has_more=False, error=f"invalid continuation token: {after!r}"
            )
        page = await asyncio.to_thread(self._store.page, limit + 1, after)
        has_more = len(page) > limit
        page = page[:limit]
        return b.ListBlobsResult(
            blobs=[b.BlobListEntry(hash=i.hash, size_bytes=i.size_bytes) for i in page],
            count=len(page),
            has_more=has_more,
            continuation_token=page[-1].hash if has_more and page else None,
        )

    async def _protect(self, req: b.ProtectBlob) -> b.ProtectBlobResult:
        if not is_valid_hash(req.hash):
            return b.ProtectBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        if await self._local_or_fetch(req.hash) is None:
            return b.ProtectBlobResult(is_success=False, error=f"blob not found: {req.hash}")
        await asyncio.to_thread(self._store.set_tag, user_tag(req.tag), req.hash, now=time.time())
        return b.ProtectBlobResult(is_success=True)

    async def _unprotect(self, req: b.UnprotectBlob) -> b.UnprotectBlobResult:
        await asyncio.to_thread(self._store.remove_tags, [user_tag(req.tag)], now=time.time())
        return b.UnprotectBlobResult(is_success=True)

    async def _delete(self, req: b.DeleteBlob) -> b.DeleteBlobResult:
        """Remove every user tag of the blob on this node, and its store and replica tags: the bytes
        stay until GC collects them after the grace period (reference §2.1; `is_force` is accepted
        and changes nothing, as there). `kv:*` tags are left alone."""
        if not is_valid_hash(req.hash):
            return b.DeleteBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        names = [
            t
            for t in self._store.tags_of(req.hash)
            if t.startswith((USER_TAG_PREFIX, STORE_TAG_PREFIX, REPLICA_TAG_PREFIX))
        ]
        if not names and not self._store.has(req.hash):
            return b.DeleteBlobResult(is_success=False, error=f"blob not found: {req.hash}")
        await asyncio.to_thread(self._store.remove_tags, names, now=time.time())
        return b.DeleteBlobResult(is_success=True)

    async def _download(self, digest: str, providers: list[int], tag: str | None) -> b.DownloadBlobResult:
        name = user_tag(tag) if tag else STORE_TAG_PREFIX + digest
        try:
            info = await self.ensure_local(digest, providers, name)
        except TransferError as err:
            return b.DownloadBlobResult(is_success=False, hash=digest, error=str(err))
        return b.DownloadBlobResult(is_success=True, hash=digest, size_bytes=info.size_bytes)

    async def _download_ticket(self, req: b.DownloadBlob) -> b.DownloadBlobResult:
        try:
            ticket = BlobTicket.decode(req.ticket)
        except ValueError as err:
            return b.DownloadBlobResult(is_success=False, error=f"invalid ticket: {err}")
        providers = [n for n in (self._node_of_endpoint(p) for p in ticket.providers) if n is not None]
        if not providers and not self._store.has(ticket.hash):
            return b.DownloadBlobResult(
                is_success=False,
                hash=ticket.hash,
                error="no provider of the ticket is a member of this cluster",
            )
        return await self._download(ticket.hash, providers, req.tag)

    async def _download_by_hash(self, req: b.DownloadBlobByHash) -> b.DownloadBlobResult:
        if not is_valid_hash(req.hash):
            return b.DownloadBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        record, _ = await self.read_record(req.hash)
        providers = list(record.nodes) if record is not None else []
        if not providers and not self._store.has(req.hash):
            return b.DownloadBlobResult(is_success=False, hash=req.hash, error=f"blob not found: {req.hash}")
        return await self._download(req.hash, providers, req.tag)

    async def _download_by_provider(self, req: b.DownloadBlobByProvider) -> b.DownloadBlobResult:
        if not is_valid_hash(req.hash):
            return b.DownloadBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        provider = self._node_of_endpoint(req.provider)
        if provider is None:
            return b.DownloadBlobResult(
                is_success=False, hash=req.hash, error=f"provider {req.provider[:16]}… is not a member"
            )
        return await self._download(req.hash, [provider], req.tag)

    async def _status(self, req: b.GetBlobStatus) -> b.GetBlobStatusResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobStatusResult(was_found=False, hash=req.hash, error=f"invalid hash: {req.hash!r}")
        size = self._store.size_of(req.hash)
        if size is None:
            return b.GetBlobStatusResult(was_found=False, hash=req.hash)
        return b.GetBlobStatusResult(
            was_found=True, hash=req.hash, size_bytes=size, complete=True, tags=self._store.tags_of(req.hash)
        )

    async def _replicate_pull(self, req: b.BlobReplicatePull) -> b.BlobReplicatePullResult:
        started = time.monotonic()
        if not is_valid_hash(req.hash):
            return b.BlobReplicatePullResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        provider = self._node_of_endpoint(req.provider)
        if provider is None:
            return b.BlobReplicatePullResult(
                is_success=False, hash=req.hash, error=f"provider {req.provider[:16]}… is not a member"
            )
        try:
            info = await self.ensure_local(req.hash, [provider], REPLICA_TAG_PREFIX + req.hash)
            if req.tag:
                await asyncio.to_thread(self._store.set_tag, user_tag(req.tag), req.hash, now=time.time())
        except TransferError as err:
            return b.BlobReplicatePullResult(is_success=False, hash=req.hash, error=str(err))
        return b.BlobReplicatePullResult(
            is_success=True,
            hash=req.hash,
            size_bytes=info.size_bytes,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    async def _replication_status(self, req: b.GetBlobReplicationStatus) -> b.GetBlobReplicationStatusResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobReplicationStatusResult(
                was_found=False, hash=req.hash, error=f"invalid hash: {req.hash!r}"
            )
        record, _ = await self.read_record(req.hash)
        if record is None:
            return b.GetBlobReplicationStatusResult(was_found=False, hash=req.hash)
        held = len(record.nodes)
        return b.GetBlobReplicationStatusResult(
            was_found=True,
            hash=record.hash,
            size_bytes=record.size,
            replica_nodes=list(record.nodes),
            replication_factor=record.policy.replication_factor,
            min_replicas=record.policy.min_replicas,
            status=classify(held, record.policy),
            replicas_needed=replicas_needed(held, record.policy),
            updated_at=record.updated_at_micros,
        )

    async def _trigger_replication(self, req: b.TriggerBlobReplication) -> b.TriggerBlobReplicationResult:
        """`blob repair`: verify this node's copy (re-fetch it if corrupt), then have every target —
        the given ones, or the current holders plus enough new nodes for the factor — verify or fetch
        its copy."""
        started = time.monotonic()
        digest = req.hash
        if not is_valid_hash(digest):
            return b.TriggerBlobReplicationResult(is_success=False, error=f"invalid hash: {digest!r}")
        record, _ = await self.read_record(digest)
        local = self._store.has(digest)
        if not local and (record is None or not record.nodes):
            return b.TriggerBlobReplicationResult(
                is_success=False, hash=digest, error="blob not found locally"
            )
        if local and not await asyncio.to_thread(self._store.verify, digest):
            log.warning("local blob copy is corrupt; fetching a good one", extra={"hash": digest})
            await self._quarantine(digest)
            others = [n for n in (record.nodes if record else ()) if n != self.node_id]
            try:
                await self.ensure_local(digest, others, REPLICA_TAG_PREFIX + digest)
            except TransferError as err:
                return b.TriggerBlobReplicationResult(
                    is_success=False, hash=digest, error=f"local copy corrupt and not repairable: {err}"
                )
            record, _ = await self.read_record(digest)
        holders = list(record.nodes) if record is not None else [self.node_id]
        if req.target_nodes:
            targets = list(dict.fromkeys(req.target_nodes))
        else:
            factor = req.replication_factor or (
                record.policy.replication_factor if record else self._default_policy().replication_factor
            )
            members = self._members()
            alive = [n for n in holders if n in members]
            targets = alive + choose_targets(digest, alive, members, factor - len(alive))
        size = record.size if record is not None else (self._store.size_of(digest) or 0)
        ok, failed = await self._ask_targets(digest, size, holders, targets)
        return b.TriggerBlobReplicationResult(
            is_success=not failed,
            hash=digest,
            successful_nodes=ok,
            failed_nodes=[b.FailedNode(node_id=n, error=e) for n, e in failed],
            duration_ms=int((time.monotonic() - started) * 1000),
            error=None if not failed else f"{len(failed)} target(s) failed",
        )

    async def _repair_cycle(self, _: b.RunBlobRepairCycle) -> b.RunBlobRepairCycleResult:
        if self._repair_running:
            return b.RunBlobRepairCycleResult(is_success=True)
        self._spawn(self.run_repair_cycle(plan=True), "blob-repair-cycle")
        return b.RunBlobRepairCycleResult(is_success=True)

    # ---------------------------------------------------------------------------- replication --
    async def replicate(self, digest: str, size: int) -> None:
        """Copy a blob this node holds to new nodes until its record reaches the replication factor."""
        try:
            record, _ = await self.read_record(digest)
            if record is None:
                return
            members = self._members()
            alive = [n for n in record.nodes if n in members]
            targets = choose_targets(digest, alive, members, record.policy.replication_factor - len(alive))
            if targets:
                ok, failed = await self._ask_targets(digest, size, alive or [self.node_id], targets)
                if failed:
                    log.warning(
                        "blob replication incomplete",
                        extra={"hash": digest, "replicated_to": ok, "failed": failed},
                    )
        except (AspenError, RaftError, TransferError) as err:
            log.warning("blob replication failed", extra={"hash": digest, "error": str(err)})

    async def _ask_targets(
        self, digest: str, size: int, providers: list[int], targets: list[int]
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """Have each target verify or fetch its copy (from `providers`); returns (ok, failed)."""

        async def one(target: int) -> str | None:
            try:
                if target == self.node_id:
                    await self.ensure_local(digest, providers, REPLICA_TAG_PREFIX + digest)
                else:
                    await self._send_pull(target, digest, size, providers)
                return None
            except (TransferError, OSError, TimeoutError, AspenError, RaftError) as err:
                return str(err) or type(err).__name__

        results = await asyncio.gather(*(one(t) for t in targets))
        ok = [t for t, err in zip(targets, results, strict=True) if err is None]
        failed = [(t, err) for t, err in zip(targets, results, strict=True) if err is not None]
        return ok, failed

    async def _send_pull(self, target: int, digest: str, size: int, providers: list[int]) -> None:
        if target not in self.raft.members and target not in self._members():
            raise TransferError(f"node {target} is not a member")
        try:
            reader, writer = await self.transport.open_channel(target, BLOB_PEER_CHANNEL)
        except (ConnectionError, OSError) as err:
            raise TransferError(f"cannot reach node {target}: {err}") from None
        try:
            await _write_frame(
                writer,
                {"op": "pull", "hash": digest, "size": size, "providers": providers},
                self.config.transfer_idle_s,
            )
            # The target transfers the whole blob before answering: allow time for it.
            budget = self.config.transfer_idle_s + size / (20 * 1024 * 1024)
            status = await _read_frame(reader, budget)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as err:
            raise TransferError(f"node {target} did not complete the copy: {err!r}") from None
        finally:
            writer.transport.abort()
        if not status.get("ok"):
            raise TransferError(f"node {target}: {status.get('error')}")

    async def ensure_local(self, digest: str, providers: list[int], tag: str) -> BlobInfo:
        """Make sure this node holds a verified copy tagged `tag` and is listed as a holder."""
        size = self._store.size_of(digest)
        if size is not None and not await asyncio.to_thread(self._store.verify, digest):
            log.warning("blob copy is corrupt; fetching a good one", extra={"hash": digest})
            await self._quarantine(digest)
            size = None
        if size is not None:
            info = BlobInfo(digest, size)
            await asyncio.to_thread(self._store.set_tag, tag, digest, now=time.time())
        else:
            info = await self.fetch(digest, [p for p in providers if p != self.node_id], tag=tag)
        try:
            await self.record_holder(digest, info.size_bytes)
        except (AspenError, RaftError) as err:
            raise TransferError(f"copy stored but not recorded: {err}") from None
        return info

    async def _quarantine(self, digest: str) -> None:
        """Drop a corrupt local copy and this node's claim to it (tags stay for the repaired copy)."""
        await asyncio.to_thread(self._store.discard, digest)
        try:
            await self.forget_holder(digest)
        except (AspenError, RaftError, TransferError) as err:
            log.warning("could not drop holder record", extra={"hash": digest, "error": str(err)})

    async def fetch(self, digest: str, providers: list[int], *, tag: str | None) -> BlobInfo:
        """Fetch `digest` from the first provider that has a good copy; one fetch per hash at a time."""
        running = self._fetching.get(digest)
        if running is not None:
            info = await asyncio.shield(running)
            if tag is not None:
                await asyncio.to_thread(self._store.set_tag, tag, digest, now=time.time())
            return info
        future: asyncio.Future[BlobInfo] = asyncio.get_running_loop().create_future()
        self._fetching[digest] = future
        try:
            info = await self._fetch_from(digest, providers, tag)
            future.set_result(info)
            return info
        except BaseException as err:
            future.set_exception(err if isinstance(err, Exception) else TransferError("cancelled"))
            future.exception()  # retrieved: waiters see it, nobody else must
            raise
        finally:
            del self._fetching[digest]

    async def _fetch_from(self, digest: str, providers: list[int], tag: str | None) -> BlobInfo:
        errors: list[str] = []
        partial = _Partial()
        async with self._slots:
            try:
                for provider in providers:
                    try:
                        await self._pull_bytes(provider, digest, partial)
                        pending, partial.pending = partial.pending, None
                        assert pending is not None
                        return await asyncio.to_thread(pending.commit, digest, tag=tag, now=time.time())
                    except HashMismatchError as err:
                        partial.reset()  # the bytes are wrong: start afresh elsewhere
                        errors.append(f"node {provider}: {err}")
                    except (TransferError, OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                        # Keep what arrived: the next provider resumes at this offset.
                        errors.append(f"node {provider}: {err!r}")
            finally:
                partial.reset()
        raise TransferError(f"no provider delivered {digest}: {'; '.join(errors) or 'no providers'}")

    async def _pull_bytes(self, provider: int, digest: str, partial: _Partial) -> None:
        """Receive the rest of `digest` from `provider` into `partial.pending` (created on the first
        answer, kept on failure so that the next provider resumes at its size)."""
        idle = self.config.transfer_idle_s
        try:
            reader, writer = await self.transport.open_channel(provider, BLOB_PEER_CHANNEL)
        except (ConnectionError, OSError) as err:
            raise TransferError(f"cannot reach node {provider}: {err}") from None
        try:
            offset = partial.pending.size if partial.pending is not None else 0
            await _write_frame(writer, {"op": "get", "hash": digest, "offset": offset}, idle)
            status = await _read_frame(reader, idle)
            if not status.get("ok"):
                raise TransferError(str(status.get("error")))
            size = int(status["size"])
            if partial.pending is None:
                partial.pending = await asyncio.to_thread(self._store.begin, size)
            elif partial.pending.expected_size != size:
                raise HashMismatchError(
                    f"node {provider} reports size {size}, expected {partial.pending.expected_size}"
                )
            await _receive(reader, partial.pending, size - partial.pending.size, idle)
        finally:
            writer.transport.abort()

    # ------------------------------------------------------------------------- data channels --
    async def _serve_peer(
        self, node_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self._serve(self._peer_session(reader, writer), reader, writer, f"node {node_id}")

    async def _authenticate_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Callable[[], Awaitable[None]] | None:
        """The client channel's credential check, run by the listener under its pre-auth deadline:
        the one-time token (so a caller that sends nothing holds a pending slot, not a session)."""
        token = await reader.readexactly(TOKEN_SIZE)
        spec = self._tokens.pop(token, None)
        if spec is None or spec.expires < time.monotonic():
            refusal = {"ok": False, "error": "unknown or expired transfer token"}
            payload = msgpack.packb(refusal, use_bin_type=True)
            writer.write(_LEN.pack(len(payload)) + payload)  # the listener flushes it, then closes
            return None

        async def session() -> None:
            await self._serve(self._client_session(reader, writer, spec), reader, writer, "client")

        return session

    async def _serve(
        self,
        session: Awaitable[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        who: str,
    ) -> None:
        """Run one data-channel session, then make sure everything written reaches the peer: the
        listener aborts the connection when this returns, which would drop unsent bytes."""
        idle = self.config.transfer_idle_s
        try:
            await session
            await _finish(reader, writer, idle)
        except (*_CHANNEL_ERRORS, ValueError, TypeError) as err:
            # A peer that broke off, stalled or sent a malformed request: this connection ends.
            log.info("blob data channel ended", extra={"peer": who, "error": repr(err)})

    async def _peer_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle = self.config.transfer_idle_s
        req = await _read_frame(reader, idle)
        op, digest = req.get("op"), req.get("hash")
        if not isinstance(digest, str) or not is_valid_hash(digest):
            await _write_frame(writer, {"ok": False, "error": "invalid hash"}, idle)
        elif op == "get":
            await self._send_blob(writer, digest, int(req.get("offset", 0)))
        elif op == "pull":
            providers = [int(p) for p in req.get("providers", []) if isinstance(p, int)]
            try:
                await self.ensure_local(digest, providers, REPLICA_TAG_PREFIX + digest)
                await _write_frame(writer, {"ok": True}, idle)
            except TransferError as err:
                await _write_frame(writer, {"ok": False, "error": str(err)}, idle)
        else:
            await _write_frame(writer, {"ok": False, "error": f"unknown op {op!r}"}, idle)

    async def _client_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: _Token
    ) -> None:
        idle = self.config.transfer_idle_s
        if spec.upload:
            await self._receive_upload(reader, writer, spec)
        else:
            assert spec.digest is not None
            async with asyncio.timeout(idle):
                (offset,) = _OFFSET.unpack(await reader.readexactly(_OFFSET.size))
            await self._send_blob(writer, spec.digest, offset)

    async def _receive_upload(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: _Token
    ) -> None:
        idle = self.config.transfer_idle_s
        async with self._slots:
            pending = await asyncio.to_thread(self._store.begin, spec.size)
            try:
                await _receive(reader, pending, spec.size, idle)
                async with asyncio.timeout(idle):
                    claimed = (await reader.readexactly(32)).hex()
                tag = user_tag(spec.tag) if spec.tag else None
                existed = self._store.has(pending.hexdigest())
                info = await asyncio.to_thread(pending.commit, claimed, tag=tag, now=time.time())
            except HashMismatchError as err:
                await _write_frame(writer, {"ok": False, "error": str(err)}, idle)
                return
            except BaseException:
                pending.abort()
                raise
        await asyncio.to_thread(self._store.set_tag, STORE_TAG_PREFIX + info.hash, info.hash, now=time.time())
        await self._after_add(info)
        await _write_frame(
            writer,
            {"ok": True, "hash": info.hash, "size": info.size_bytes, "was_new": not existed},
            idle,
        )

    async def _send_blob(self, writer: asyncio.StreamWriter, digest: str, offset: int) -> None:
        """Stream a local blob from `offset`. A full read is hashed on the way; if the copy turns
        out corrupt it is quarantined (the receiver's own check rejects the bytes)."""
        idle = self.config.transfer_idle_s
        try:
            f = await asyncio.to_thread(self._store.open_read, digest)
        except FileNotFoundError:
            await _write_frame(writer, {"ok": False, "error": f"blob not found: {digest}"}, idle)
            return
        async with self._slots:
            try:
                size = await asyncio.to_thread(lambda: f.seek(0, 2))
                if not 0 <= offset <= size:
                    await _write_frame(writer, {"ok": False, "error": f"offset {offset} out of range"}, idle)
                    return
                await asyncio.to_thread(f.seek, offset)
                await _write_frame(writer, {"ok": True, "size": size}, idle)
                hasher = new_hasher() if offset == 0 else None

                def read_chunk() -> bytes:  # in a worker thread, while the loop sends the last one
                    data = f.read(CHUNK)
                    if hasher is not None:
                        hasher.update(data)
                    return data

                chunk = await asyncio.to_thread(read_chunk)
                # Bounded by the file size: each turn sends one chunk of it.
                while chunk:
                    writer.write(chunk)
                    next_read = asyncio.ensure_future(asyncio.to_thread(read_chunk))
                    try:
                        async with asyncio.timeout(idle):
                            await writer.drain()
                    except BaseException:
                        next_read.cancel()
                        raise
                    chunk = await next_read
                if hasher is not None and hasher.hexdigest() != digest:
                    log.warning("served a corrupt blob copy; dropping it", extra={"hash": digest})
                    await self._quarantine(digest)
            finally:
                await asyncio.to_thread(f.close)

    # ------------------------------------------------------------------------ background loops --
    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.gc_interval_s)
            try:
                await self.collect_garbage()
            except Exception:
                log.exception("blob gc failed")

    async def collect_garbage(self) -> list[str]:
        removed: list[str] = await asyncio.to_thread(
            self._store.gc, now=time.time(), grace_s=self.config.gc_grace_s
        )
        for digest in removed:
            log.info("blob collected", extra={"hash": digest})
            try:
                await self.forget_holder(digest)
            except (AspenError, RaftError, TransferError) as err:
                log.warning("could not drop holder record", extra={"hash": digest, "error": str(err)})
        return removed

    async def _repair_loop(self) -> None:
        """Every repair interval the leader re-replicates what is short; every scrub interval each
        node re-hashes its own copies."""
        loop = asyncio.get_running_loop()
        next_scrub = loop.time() + self.config.scrub_interval_s
        while True:
            await asyncio.sleep(self.config.repair_interval_s)
            scrub = loop.time() >= next_scrub
            if scrub:
                next_scrub = loop.time() + self.config.scrub_interval_s
            try:
                await self.run_repair_cycle(plan=self.raft.role == StateRole.LEADER, scrub=scrub)
            except Exception:
                log.exception("blob repair cycle failed")

    async def run_repair_cycle(self, *, plan: bool, scrub: bool = True) -> None:
        """Scrub local copies (bounded bytes per cycle), then — on the planning node — copy every
        under-replicated blob to new holders, most urgent first."""
        if self._repair_running:
            return
        self._repair_running = True
        try:
            if scrub:
                await self._scrub()
            if plan:
                await self._plan_repairs()
        finally:
            self._repair_running = False

    async def _scrub(self) -> None:
        budget = self.config.scrub_bytes_per_cycle
        for info in await asyncio.to_thread(lambda: list(self._store.iter_blobs())):
            if budget <= 0:
                break
            budget -= info.size_bytes
            if await asyncio.to_thread(self._store.verify, info.hash):
                continue
            log.warning("scrub found a corrupt blob copy; repairing", extra={"hash": info.hash})
            tags = self._store.tags_of(info.hash)
            await self._quarantine(info.hash)
            if not tags:
                continue  # an untagged cache copy: nothing to keep
            record, _ = await self.read_record(info.hash)
            others = [n for n in (record.nodes if record else ()) if n != self.node_id]
            try:
                await self.ensure_local(info.hash, others, tags[0])
            except TransferError as err:
                log.warning(
                    "corrupt blob copy not repairable now", extra={"hash": info.hash, "error": str(err)}
                )

    async def _plan_repairs(self) -> None:
        await self.raft.read_barrier(timeout=META_TIMEOUT_S)
        records: list[ReplicaRecord] = []
        token: str | None = None
        kv_state = self._kv()
        for _ in range(10_000):  # bounded pagination over the metadata prefix
            page = kv_state.scan(kv.Scan(META_PREFIX, 1000, token))
            for entry in page.entries:
                with contextlib.suppress(ValueError):
                    records.append(ReplicaRecord.decode(entry.value))
            token = page.continuation_token
            if not page.is_truncated:
                break
        members = self._members()
        for rec in repair_order(records, members):
            alive = [n for n in rec.nodes if n in members]
            if not alive:
                continue  # critical: nobody left to copy from
            targets = choose_targets(rec.hash, alive, members, rec.policy.replication_factor - len(alive))
            if not targets:
                continue
            ok, failed = await self._ask_targets(rec.hash, rec.size, alive, targets)
            log.info("blob repaired", extra={"hash": rec.hash, "new_holders": ok, "failed": failed})


async def _finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float) -> None:
    """Flush everything written (drain with no high-water mark waits for an empty buffer), then
    wait until the peer, which has read all it expects, closes its side."""
    writer.transport.set_write_buffer_limits(high=0)
    async with asyncio.timeout(idle):
        await writer.drain()
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(idle):
            await reader.read(1)


async def _receive(reader: asyncio.StreamReader, pending: PendingBlob, nbytes: int, idle: float) -> None:
    """Read `nbytes` into `pending`: hashing and disk writes run in a worker thread while the next
    chunk is read (at most two chunks in memory)."""
    writing: asyncio.Future[None] | None = None
    remaining = nbytes
    try:
        # Bounded by nbytes: every turn consumes at least one byte or raises.
        while remaining > 0:
            async with asyncio.timeout(idle):
                chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(asyncio.to_thread(pending.write, chunk))
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing


_FAILURE_FIELDS: dict[str, dict[str, Any]] = {
    "AddBlob": {"is_success": False},
    "StartBlobUpload": {"is_success": False},
    "GetBlob": {"was_found": False},
    "HasBlob": {"does_exist": False},
    "GetBlobTicket": {"is_success": False},
    "ListBlobs": {"blobs": [], "count": 0, "has_more": False},
    "ProtectBlob": {"is_success": False},
    "UnprotectBlob": {"is_success": False},
    "DeleteBlob": {"is_success": False},
    "DownloadBlob": {"is_success": False},
    "DownloadBlobByHash": {"is_success": False},
    "DownloadBlobByProvider": {"is_success": False},
    "GetBlobStatus": {"was_found": False},
    "BlobReplicatePull": {"is_success": False},
    "GetBlobReplicationStatus": {"was_found": False},
    "TriggerBlobReplication": {"is_success": False},
    "RunBlobRepairCycle": {"is_success": False},
}
_RESULT_OF: dict[str, type[Any]] = {
    "AddBlob": b.AddBlobResult,
    "StartBlobUpload": b.AddBlobResult,
    "GetBlob": b.GetBlobResult,
    "HasBlob": b.HasBlobResult,
    "GetBlobTicket": b.GetBlobTicketResult,
    "ListBlobs": b.ListBlobsResult,
    "ProtectBlob": b.ProtectBlobResult,
    "UnprotectBlob": b.UnprotectBlobResult,
    "DeleteBlob": b.DeleteBlobResult,
    "DownloadBlob": b.DownloadBlobResult,
    "DownloadBlobByHash": b.DownloadBlobResult,
    "DownloadBlobByProvider": b.DownloadBlobResult,
    "GetBlobStatus": b.GetBlobStatusResult,
    "BlobReplicatePull": b.BlobReplicatePullResult,
    "GetBlobReplicationStatus": b.GetBlobReplicationStatusResult,
    "TriggerBlobReplication": b.TriggerBlobReplicationResult,
    "RunBlobRepairCycle": b.RunBlobRepairCycleResult,
}


def _failure(req: Any, error: str) -> Any:
    """The request's own result type, failed with `error` (reference: "blob store not enabled")."""
    return _RESULT_OF[req.type](**_FAILURE_FIELDS[req.type], error=error)


def make_blob_service(
    data_dir: Path,
    me: NodeIdentityInfo,
    raft: RaftNode,
    state: NodeStateMachine,
    transport: TcpTransport,
    service: NodeService,
) -> BlobService:
    """Build the blob service of a node from `ASPEN_BLOBS_*`, register its handlers with the node's
    request boundary and its channels with the peer listener, and start its background loops."""
    blobs = BlobService(
        config=BlobConfig.from_env(),
        data_dir=data_dir,
        node_id=me.node_id,
        endpoint_id=me.endpoint_id,
        addrs=tuple(me.addrs),
        raft=raft,
        kv_state=lambda: state.kv,
        transport=transport,
        submit=service.submit,
    )
    service.register(blobs.handlers())
    blobs.start()
    return blobs
