"""The blob service's request handlers: one per wire request, each answering for the contacted node.

A node lacking a blob finds holders in the metadata and fetches from one (read-through).
Read-through copies are untagged: GC drops them after the grace period, so they never count as
replicas and never inflate the metadata. A copy found corrupt when served is discarded at once and
fetched again from a good holder.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import blake3

from aspen.api import blob_messages as b
from aspen.blob.policy import (
    REPLICA_TAG_PREFIX,
    STORE_TAG_PREFIX,
    USER_TAG_PREFIX,
    choose_targets,
    classify,
    replicas_needed,
    user_tag,
)
from aspen.blob.store import BlobInfo, BlobTooLargeError, is_valid_hash
from aspen.blob.ticket import BlobTicket
from aspen.node.blobs.core import BlobCore
from aspen.node.blobs.framing import TransferError
from aspen.node.blobs.maintenance import Maintenance
from aspen.node.blobs.replication import Replication
from aspen.node.blobs.transfer import Token, Transfers
from aspen.node.membership import parse_endpoint_addr

__all__ = ["NOT_ENABLED", "BlobHandlers", "Handler"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[Any]]

NOT_ENABLED = "blob store not enabled"
LIST_MAX = 1000


class BlobHandlers:
    def __init__(
        self, core: BlobCore, transfers: Transfers, replication: Replication, maintenance: Maintenance
    ) -> None:
        self.core = core
        self.transfers = transfers
        self.replication = replication
        self.maintenance = maintenance

    def table(self) -> dict[str, Handler]:
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
        if self.core.store is None:
            return {name: self._disabled for name in table}
        return table

    async def _disabled(self, req: Any) -> Any:
        return _failure(req, NOT_ENABLED)

    async def _add_blob(self, req: b.AddBlob) -> b.AddBlobResult:
        tag = user_tag(req.tag) if req.tag else None
        try:
            info, was_new = await asyncio.to_thread(self._add_bytes, req.data, tag)
        except (BlobTooLargeError, OSError) as err:
            return b.AddBlobResult(is_success=False, error=str(err))
        await self.replication.after_add(info)
        return b.AddBlobResult(is_success=True, hash=info.hash, size_bytes=info.size_bytes, was_new=was_new)

    def _add_bytes(self, data: bytes, tag: str | None) -> tuple[BlobInfo, bool]:
        info, was_new = self.core.blobs.add_bytes(data, tag=tag, now=time.time())
        self.core.blobs.set_tag(STORE_TAG_PREFIX + info.hash, info.hash, now=time.time())
        return info, was_new

    async def _start_upload(self, req: b.StartBlobUpload) -> b.BlobUploadReady | b.AddBlobResult:
        if req.size_bytes > self.core.blobs.max_size:
            return b.AddBlobResult(
                is_success=False,
                error=f"blob of {req.size_bytes} bytes exceeds the limit of {self.core.blobs.max_size} bytes",
            )
        token = self.transfers.issue(Token(True, None, req.size_bytes, req.tag, 0.0))
        return b.BlobUploadReady(transfer=self.transfers.describe(token, req.size_bytes))

    async def _get_blob(self, req: b.GetBlob) -> b.GetBlobResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobResult(was_found=False, error=f"invalid hash: {req.hash!r}")
        info = await self._local_or_fetch(req.hash)
        if info is None:
            return b.GetBlobResult(was_found=False, error=f"blob not found: {req.hash}")
        if info.size_bytes <= b.BLOB_INLINE_THRESHOLD:
            data = await asyncio.to_thread(self.core.blobs.read_bytes, req.hash)
            if blake3.blake3(data).hexdigest() != req.hash:
                await self.core.quarantine(req.hash)
                info = await self._local_or_fetch(req.hash)
                if info is None:
                    return b.GetBlobResult(was_found=False, error=f"blob not found: {req.hash}")
                data = await asyncio.to_thread(self.core.blobs.read_bytes, req.hash)
            return b.GetBlobResult(was_found=True, data=data, size_bytes=len(data))
        token = self.transfers.issue(Token(False, req.hash, info.size_bytes, None, 0.0))
        return b.GetBlobResult(
            was_found=True,
            is_streaming=True,
            size_bytes=info.size_bytes,
            transfer=self.transfers.describe(token, info.size_bytes),
        )

    async def _local_or_fetch(self, digest: str) -> BlobInfo | None:
        """The local copy, or one fetched from a holder named in the metadata (read-through, untagged)."""
        size = self.core.blobs.size_of(digest)
        if size is not None:
            return BlobInfo(digest, size)
        record = await self.core.meta.read_record(digest)
        if record is None:
            return None
        holders = [n for n in record.nodes if n != self.core.node_id]
        try:
            return await self.transfers.fetch(digest, holders, tag=None)
        except TransferError as err:
            log.warning("read-through fetch failed", extra={"hash": digest, "error": str(err)})
            return None

    async def _has_blob(self, req: b.HasBlob) -> b.HasBlobResult:
        if not is_valid_hash(req.hash):
            return b.HasBlobResult(does_exist=False, error=f"invalid hash: {req.hash!r}")
        if self.core.blobs.has(req.hash):
            return b.HasBlobResult(does_exist=True)
        record = await self.core.meta.read_record(req.hash)
        return b.HasBlobResult(does_exist=record is not None and bool(record.nodes))

    async def _blob_ticket(self, req: b.GetBlobTicket) -> b.GetBlobTicketResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobTicketResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        record = await self.core.meta.read_record(req.hash)
        size = self.core.blobs.size_of(req.hash)
        holders = set(record.nodes) if record is not None else set()
        if size is not None:
            holders.add(self.core.node_id)
        if not holders:
            return b.GetBlobTicketResult(is_success=False, error=f"blob not found: {req.hash}")
        providers = []
        for node_id in sorted(holders):
            if node_id == self.core.node_id:
                providers.append(self.core.endpoint_id)
            elif node_id in self.core.raft.members:
                providers.append(parse_endpoint_addr(self.core.raft.members[node_id]).endpoint_id)
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
        page = await asyncio.to_thread(self.core.blobs.page, limit + 1, after)
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
        await asyncio.to_thread(self.core.blobs.set_tag, user_tag(req.tag), req.hash, now=time.time())
        return b.ProtectBlobResult(is_success=True)

    async def _unprotect(self, req: b.UnprotectBlob) -> b.UnprotectBlobResult:
        await asyncio.to_thread(self.core.blobs.remove_tags, [user_tag(req.tag)], now=time.time())
        return b.UnprotectBlobResult(is_success=True)

    async def _delete(self, req: b.DeleteBlob) -> b.DeleteBlobResult:
        """Remove every user tag of the blob on this node, and its store and replica tags: the bytes
        stay until GC collects them after the grace period (`is_force` is accepted and changes
        nothing, as in the original Aspen). `kv:*` tags are left alone."""
        if not is_valid_hash(req.hash):
            return b.DeleteBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        names = [
            t
            for t in self.core.blobs.tags_of(req.hash)
            if t.startswith((USER_TAG_PREFIX, STORE_TAG_PREFIX, REPLICA_TAG_PREFIX))
        ]
        if not names and not self.core.blobs.has(req.hash):
            return b.DeleteBlobResult(is_success=False, error=f"blob not found: {req.hash}")
        await asyncio.to_thread(self.core.blobs.remove_tags, names, now=time.time())
        return b.DeleteBlobResult(is_success=True)

    async def _download(self, digest: str, providers: list[int], tag: str | None) -> b.DownloadBlobResult:
        name = user_tag(tag) if tag else STORE_TAG_PREFIX + digest
        try:
            info = await self.replication.ensure_local(digest, providers, name)
        except TransferError as err:
            return b.DownloadBlobResult(is_success=False, hash=digest, error=str(err))
        return b.DownloadBlobResult(is_success=True, hash=digest, size_bytes=info.size_bytes)

    async def _download_ticket(self, req: b.DownloadBlob) -> b.DownloadBlobResult:
        try:
            ticket = BlobTicket.decode(req.ticket)
        except ValueError as err:
            return b.DownloadBlobResult(is_success=False, error=f"invalid ticket: {err}")
        providers = [n for n in (self.core.node_of_endpoint(p) for p in ticket.providers) if n is not None]
        if not providers and not self.core.blobs.has(ticket.hash):
            return b.DownloadBlobResult(
                is_success=False,
                hash=ticket.hash,
                error="no provider of the ticket is a member of this cluster",
            )
        return await self._download(ticket.hash, providers, req.tag)

    async def _download_by_hash(self, req: b.DownloadBlobByHash) -> b.DownloadBlobResult:
        if not is_valid_hash(req.hash):
            return b.DownloadBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        record = await self.core.meta.read_record(req.hash)
        providers = list(record.nodes) if record is not None else []
        if not providers and not self.core.blobs.has(req.hash):
            return b.DownloadBlobResult(is_success=False, hash=req.hash, error=f"blob not found: {req.hash}")
        return await self._download(req.hash, providers, req.tag)

    async def _download_by_provider(self, req: b.DownloadBlobByProvider) -> b.DownloadBlobResult:
        if not is_valid_hash(req.hash):
            return b.DownloadBlobResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        provider = self.core.node_of_endpoint(req.provider)
        if provider is None:
            return b.DownloadBlobResult(
                is_success=False, hash=req.hash, error=f"provider {req.provider[:16]}… is not a member"
            )
        return await self._download(req.hash, [provider], req.tag)

    async def _status(self, req: b.GetBlobStatus) -> b.GetBlobStatusResult:
        if not is_valid_hash(req.hash):
            return b.GetBlobStatusResult(was_found=False, hash=req.hash, error=f"invalid hash: {req.hash!r}")
        size = self.core.blobs.size_of(req.hash)
        if size is None:
            return b.GetBlobStatusResult(was_found=False, hash=req.hash)
        return b.GetBlobStatusResult(
            was_found=True,
            hash=req.hash,
            size_bytes=size,
            complete=True,
            tags=self.core.blobs.tags_of(req.hash),
        )

    async def _replicate_pull(self, req: b.BlobReplicatePull) -> b.BlobReplicatePullResult:
        started = time.monotonic()
        if not is_valid_hash(req.hash):
            return b.BlobReplicatePullResult(is_success=False, error=f"invalid hash: {req.hash!r}")
        provider = self.core.node_of_endpoint(req.provider)
        if provider is None:
            return b.BlobReplicatePullResult(
                is_success=False, hash=req.hash, error=f"provider {req.provider[:16]}… is not a member"
            )
        try:
            info = await self.replication.ensure_local(req.hash, [provider], REPLICA_TAG_PREFIX + req.hash)
            if req.tag:
                await asyncio.to_thread(self.core.blobs.set_tag, user_tag(req.tag), req.hash, now=time.time())
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
        record = await self.core.meta.read_record(req.hash)
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
        record = await self.core.meta.read_record(digest)
        local = self.core.blobs.has(digest)
        if not local and (record is None or not record.nodes):
            return b.TriggerBlobReplicationResult(
                is_success=False, hash=digest, error="blob not found locally"
            )
        if local and not await asyncio.to_thread(self.core.blobs.verify, digest):
            log.warning("local blob copy is corrupt; fetching a good one", extra={"hash": digest})
            await self.core.quarantine(digest)
            others = [n for n in (record.nodes if record else ()) if n != self.core.node_id]
            try:
                await self.replication.ensure_local(digest, others, REPLICA_TAG_PREFIX + digest)
            except TransferError as err:
                return b.TriggerBlobReplicationResult(
                    is_success=False, hash=digest, error=f"local copy corrupt and not repairable: {err}"
                )
            record = await self.core.meta.read_record(digest)
        holders = list(record.nodes) if record is not None else [self.core.node_id]
        if req.target_nodes:
            targets = list(dict.fromkeys(req.target_nodes))
        else:
            factor = req.replication_factor or (
                record.policy.replication_factor if record else self.core.default_policy().replication_factor
            )
            members = self.core.members()
            alive = [n for n in holders if n in members]
            targets = alive + choose_targets(digest, alive, members, factor - len(alive))
        size = record.size if record is not None else (self.core.blobs.size_of(digest) or 0)
        ok, failed = await self.replication.ask_targets(digest, size, holders, targets)
        return b.TriggerBlobReplicationResult(
            is_success=not failed,
            hash=digest,
            successful_nodes=ok,
            failed_nodes=[b.FailedNode(node_id=n, error=e) for n, e in failed],
            duration_ms=int((time.monotonic() - started) * 1000),
            error=None if not failed else f"{len(failed)} target(s) failed",
        )

    async def _repair_cycle(self, _: b.RunBlobRepairCycle) -> b.RunBlobRepairCycleResult:
        if self.maintenance.repair_running:
            return b.RunBlobRepairCycleResult(is_success=True)
        self.core.spawn(self.maintenance.run_repair_cycle(plan=True), "blob-repair-cycle")
        return b.RunBlobRepairCycleResult(is_success=True)


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
    """The request's own result type, failed with `error` (e.g. "blob store not enabled")."""
    return _RESULT_OF[req.type](**_FAILURE_FIELDS[req.type], error=error)
