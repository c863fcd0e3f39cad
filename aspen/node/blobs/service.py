"""The blob service of a node: its parts wired together, its lifecycle, and its registration with
the node's request boundary and the peer listener."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aspen.blob.config import BlobConfig
from aspen.blob.store import BlobInfo, BlobStore
from aspen.node.blobs.core import BlobCore
from aspen.node.blobs.handlers import BlobHandlers, Handler
from aspen.node.blobs.maintenance import Maintenance
from aspen.node.blobs.metadata import BlobMetadata, MetaSeam, RaftSeam
from aspen.node.blobs.replication import Replication
from aspen.node.blobs.transfer import Transfers
from aspen.node.service import NodeIdentityInfo, NodeService
from aspen.node.state import NodeStateMachine
from aspen.peer.transport import TcpTransport
from aspen.raft.node import RaftNode
from aspen.rpc.bulk import BLOB_CLIENT_CHANNEL, BLOB_PEER_CHANNEL

__all__ = ["BlobService", "make_blob_service"]


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
        transport: TcpTransport,
        seam: MetaSeam,
    ) -> None:
        meta = BlobMetadata(node_id=node_id, seam=seam)
        self.core = BlobCore(
            config=config,
            data_dir=data_dir,
            node_id=node_id,
            endpoint_id=endpoint_id,
            addrs=addrs,
            raft=raft,
            transport=transport,
            meta=meta,
        )
        self.transfers = Transfers(self.core, on_stored=self._stored)
        self.replication = Replication(self.core, self.transfers)
        self.maintenance = Maintenance(self.core, self.replication)
        self._handlers = BlobHandlers(self.core, self.transfers, self.replication, self.maintenance)
        self._loops: list[asyncio.Task[None]] = []

    @property
    def store(self) -> BlobStore | None:
        return self.core.store

    async def _stored(self, info: BlobInfo) -> None:
        await self.replication.after_add(info)

    def handlers(self) -> dict[str, Handler]:
        return self._handlers.table()

    def start(self) -> None:
        if self.core.store is None:
            return
        transport = self.core.transport
        transport.register_channel(BLOB_PEER_CHANNEL, self.replication.serve_peer)
        transport.register_open_channel(BLOB_CLIENT_CHANNEL, self.transfers.authenticate_client)
        self._loops.append(asyncio.create_task(self.maintenance.gc_loop(), name="blob-gc"))
        self._loops.append(asyncio.create_task(self.maintenance.repair_loop(), name="blob-repair"))

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._loops, *self.core.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


def make_blob_service(
    data_dir: Path,
    me: NodeIdentityInfo,
    raft: RaftNode,
    state: NodeStateMachine,
    transport: TcpTransport,
    service: NodeService,
) -> BlobService:
    """Build the blob service of a node from `ASPEN_BLOBS_*`, register its handlers with the node's
    request boundary and its channels with the peer listener, and start its background loops.
    Its metadata reaches the state machine through `RaftSeam` (propose, barrier, read view), not
    through the node's request boundary."""
    blobs = BlobService(
        config=BlobConfig.from_env(),
        data_dir=data_dir,
        node_id=me.node_id,
        endpoint_id=me.endpoint_id,
        addrs=tuple(me.addrs),
        raft=raft,
        transport=transport,
        seam=RaftSeam(raft, lambda: state.kv),
    )
    service.register(blobs.handlers())
    blobs.start()
    return blobs
