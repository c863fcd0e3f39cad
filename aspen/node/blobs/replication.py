"""Replication: copy a blob to new holders until its record reaches the replication factor, make
sure this node holds a verified copy (`ensure_local`), and serve the node-to-node channel.

This node lists itself in a blob's record only while it has a complete, hash-verified copy tagged
`_store:` (added here) or `_replica:` (replicated here).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aspen.api.errors import AspenError
from aspen.blob.policy import REPLICA_TAG_PREFIX, choose_targets
from aspen.blob.store import BlobInfo, is_valid_hash
from aspen.node.blobs.core import BlobCore
from aspen.node.blobs.framing import TransferError, read_frame, write_frame
from aspen.node.blobs.transfer import Transfers
from aspen.raft.errors import RaftError
from aspen.rpc.bulk import BLOB_PEER_CHANNEL

__all__ = ["Replication"]

log = logging.getLogger(__name__)


class Replication:
    def __init__(self, core: BlobCore, transfers: Transfers) -> None:
        self.core = core
        self.transfers = transfers

    async def after_add(self, info: BlobInfo) -> None:
        """Record this node as a holder (so other nodes find the blob at once), then replicate in the
        background until the replication factor is met."""
        await self.core.record_quietly(info.hash, info.size_bytes)
        self.core.spawn(self.replicate(info.hash, info.size_bytes), f"blob-replicate-{info.hash[:8]}")

    async def replicate(self, digest: str, size: int) -> None:
        """Copy a blob this node holds to new nodes until its record reaches the replication factor."""
        try:
            record = await self.core.meta.read_record(digest)
            if record is None:
                return
            members = self.core.members()
            alive = [n for n in record.nodes if n in members]
            targets = choose_targets(digest, alive, members, record.policy.replication_factor - len(alive))
            if targets:
                ok, failed = await self.ask_targets(digest, size, alive or [self.core.node_id], targets)
                if failed:
                    log.warning(
                        "blob replication incomplete",
                        extra={"hash": digest, "replicated_to": ok, "failed": failed},
                    )
        except (AspenError, RaftError, TransferError) as err:
            log.warning("blob replication failed", extra={"hash": digest, "error": str(err)})

    async def ask_targets(
        self, digest: str, size: int, providers: list[int], targets: list[int]
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """Have each target verify or fetch its copy (from `providers`); returns (ok, failed)."""

        async def one(target: int) -> str | None:
            try:
                if target == self.core.node_id:
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
        core = self.core
        if target not in core.raft.members and target not in core.members():
            raise TransferError(f"node {target} is not a member")
        try:
            reader, writer = await core.transport.open_channel(target, BLOB_PEER_CHANNEL)
        except (ConnectionError, OSError) as err:
            raise TransferError(f"cannot reach node {target}: {err}") from None
        try:
            await write_frame(
                writer,
                {"op": "pull", "hash": digest, "size": size, "providers": providers},
                core.config.transfer_idle_s,
            )
            # The target transfers the whole blob before answering: allow time for it.
            budget = core.config.transfer_idle_s + size / (20 * 1024 * 1024)
            status = await read_frame(reader, budget)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as err:
            raise TransferError(f"node {target} did not complete the copy: {err!r}") from None
        finally:
            writer.transport.abort()
        if not status.get("ok"):
            raise TransferError(f"node {target}: {status.get('error')}")

    async def ensure_local(self, digest: str, providers: list[int], tag: str) -> BlobInfo:
        """Make sure this node holds a verified copy tagged `tag` and is listed as a holder."""
        store = self.core.blobs
        size = store.size_of(digest)
        if size is not None and not await asyncio.to_thread(store.verify, digest):
            log.warning("blob copy is corrupt; fetching a good one", extra={"hash": digest})
            await self.core.quarantine(digest)
            size = None
        if size is not None:
            info = BlobInfo(digest, size)
            await asyncio.to_thread(store.set_tag, tag, digest, now=time.time())
        else:
            info = await self.transfers.fetch(
                digest, [p for p in providers if p != self.core.node_id], tag=tag
            )
        try:
            await self.core.record_holder(digest, info.size_bytes)
        except (AspenError, RaftError) as err:
            raise TransferError(f"copy stored but not recorded: {err}") from None
        return info

    # --------------------------------------------------------------------------- peer channel --
    async def serve_peer(
        self, node_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self.transfers.serve(self._peer_session(reader, writer), reader, writer, f"node {node_id}")

    async def _peer_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle = self.core.config.transfer_idle_s
        req = await read_frame(reader, idle)
        op, digest = req.get("op"), req.get("hash")
        if not isinstance(digest, str) or not is_valid_hash(digest):
            await write_frame(writer, {"ok": False, "error": "invalid hash"}, idle)
        elif op == "get":
            await self.transfers.send_blob(writer, digest, int(req.get("offset", 0)))
        elif op == "pull":
            providers = [int(p) for p in req.get("providers", []) if isinstance(p, int)]
            try:
                await self.ensure_local(digest, providers, REPLICA_TAG_PREFIX + digest)
                await write_frame(writer, {"ok": True}, idle)
            except TransferError as err:
                await write_frame(writer, {"ok": False, "error": str(err)}, idle)
        else:
            await write_frame(writer, {"ok": False, "error": f"unknown op {op!r}"}, idle)
