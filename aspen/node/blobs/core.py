"""What every part of the blob service shares: this node's store, its metadata, its peers, the
transfer slots and the background tasks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from aspen.api.errors import AspenError
from aspen.blob.config import BlobConfig
from aspen.blob.policy import ReplicationPolicy, default_factor
from aspen.blob.store import BlobStore
from aspen.node.blobs.framing import TransferError
from aspen.node.blobs.metadata import BlobMetadata
from aspen.node.membership import MembershipError, parse_endpoint_addr
from aspen.peer.transport import TcpTransport
from aspen.raft.errors import RaftError
from aspen.raft.node import RaftNode

__all__ = ["BlobCore"]

log = logging.getLogger(__name__)


class BlobCore:
    def __init__(
        self,
        *,
        config: BlobConfig,
        data_dir: Path,
        node_id: int,
        endpoint_id: str,
        addrs: tuple[str, ...],
        raft: RaftNode,
        transport: TcpTransport,
        meta: BlobMetadata,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.endpoint_id = endpoint_id
        self.addrs = addrs
        self.raft = raft
        self.transport = transport
        self.meta = meta
        self.store: BlobStore | None = (
            BlobStore(data_dir / "blobs", max_size=config.max_size, now=time.time())
            if config.enabled
            else None
        )
        self.slots = asyncio.Semaphore(config.max_concurrent_transfers)
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def blobs(self) -> BlobStore:
        """The store (every caller runs only when the blob service is enabled)."""
        assert self.store is not None
        return self.store

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def default_policy(self) -> ReplicationPolicy:
        factor = self.config.replication_factor or default_factor(len(self.raft.conf_state.voters))
        return ReplicationPolicy.for_factor(factor)

    def members(self) -> list[int]:
        conf = self.raft.conf_state
        return sorted({*conf.voters, *conf.learners})

    def node_of_endpoint(self, endpoint_id: str) -> int | None:
        for node_id, context in self.raft.members.items():
            try:
                if parse_endpoint_addr(context).endpoint_id == endpoint_id.lower():
                    return node_id
            except (MembershipError, ValueError):
                continue
        return None

    async def record_holder(self, digest: str, size: int) -> None:
        await self.meta.record_holder(digest, size, self.default_policy())

    async def record_quietly(self, digest: str, size: int) -> None:
        try:
            await self.record_holder(digest, size)
        except (AspenError, RaftError, TransferError) as err:
            log.warning("could not record blob holder", extra={"hash": digest, "error": str(err)})

    async def forget_quietly(self, digest: str) -> None:
        try:
            await self.meta.forget_holder(digest)
        except (AspenError, RaftError, TransferError) as err:
            log.warning("could not drop holder record", extra={"hash": digest, "error": str(err)})

    async def quarantine(self, digest: str) -> None:
        """Drop a corrupt local copy and this node's claim to it (tags stay for the repaired copy)."""
        await asyncio.to_thread(self.blobs.discard, digest)
        await self.forget_quietly(digest)
