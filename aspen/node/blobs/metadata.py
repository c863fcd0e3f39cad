"""Blob metadata: which nodes hold a hash, as a replica record kept by the `blobmeta` layer.

Every change is ONE layer operation (add this node as a holder / drop it), proposed once and
applied atomically; reads are linearizable (a read barrier, then the local state). The node reaches
the state machine through one narrow seam (`MetaSeam`: propose a layer command, barrier, read view),
not through wire messages sent back into its own request boundary.

A follower hands its operations to the leader over the Raft channel (`forward=True`): the only time
in them is `updated_at_micros`, which is informational (`aspen.layers.blobmeta`), so the proposer's
clock is as good as the leader's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aspen import kv
from aspen.api.errors import InternalError
from aspen.kv import KvView, LayerCommand, LayerRejected
from aspen.layers import blobmeta
from aspen.layers.blobmeta import META_PREFIX, BlobMetaOp, BlobMetaResult, ReplicaRecord, ReplicationPolicy
from aspen.node.blobs.framing import TransferError
from aspen.raft.node import RaftNode

__all__ = ["META_TIMEOUT_S", "BlobMetadata", "MetaSeam", "RaftSeam"]

log = logging.getLogger(__name__)

META_TIMEOUT_S = 10.0
#: Log entry size estimate for group-commit accounting: the hash plus a fixed allowance.
_ENTRY_SIZE = 64 + 64
_SCAN_PAGE = 1000
_SCAN_PAGES = 10_000


class MetaSeam(Protocol):
    """What the blob service needs of the node's state machine, and nothing more."""

    async def propose(self, command: LayerCommand, size: int) -> Any:
        """Replicate and apply `command`; its result."""
        ...

    async def barrier(self) -> None:
        """Wait until the local state reflects every write committed before the call."""
        ...

    def view(self) -> KvView:
        """A read-only view of the local state (after a barrier: a linearizable one)."""
        ...

    def now_ms(self) -> int:
        """The clock the commands are stamped with."""
        ...


class RaftSeam:
    """`MetaSeam` over this node's Raft driver and state machine."""

    def __init__(self, raft: RaftNode, kv_state: Callable[[], kv.KvStateMachine]) -> None:
        self._raft = raft
        self._kv = kv_state

    async def propose(self, command: LayerCommand, size: int) -> Any:
        return await self._raft.propose(command, size=size, timeout=META_TIMEOUT_S, forward=True)

    async def barrier(self) -> None:
        await self._raft.read_barrier(timeout=META_TIMEOUT_S)

    def view(self) -> KvView:
        return KvView(self._kv())

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class BlobMetadata:
    def __init__(self, *, node_id: int, seam: MetaSeam) -> None:
        self.node_id = node_id
        self._seam = seam

    async def barrier(self) -> None:
        await self._seam.barrier()

    async def read_record(self, digest: str) -> ReplicaRecord | None:
        """The replica record of `digest` at a linearizable point (None if absent or unreadable)."""
        await self._seam.barrier()
        record, stored = blobmeta.read_record(self._seam.view(), digest)
        if record is None and stored:
            log.warning("unreadable blob replica record", extra={"hash": digest})
        return record

    async def all_records(self) -> list[ReplicaRecord]:
        """Every readable replica record, at a linearizable point (bounded pagination)."""
        await self._seam.barrier()
        view = self._seam.view()
        records: list[ReplicaRecord] = []
        after: str | None = None
        for _ in range(_SCAN_PAGES):
            page = view.scan(META_PREFIX, after=after, limit=_SCAN_PAGE)
            for _key, value in page:
                try:
                    records.append(ReplicaRecord.decode(value))
                except ValueError:
                    continue
            if len(page) < _SCAN_PAGE:
                break
            after = page[-1][0]
        return records

    async def _change(self, op: BlobMetaOp) -> BlobMetaResult:
        error = op.check()
        if error is not None:
            raise TransferError(f"invalid blob metadata change: {error}")
        cmd = blobmeta.LAYER.command(op, self._seam.now_ms())
        result = await self._seam.propose(cmd, _ENTRY_SIZE)
        if isinstance(result, LayerRejected):  # this node's machine lacks the layer: a build mismatch
            raise InternalError(result.error)
        if not isinstance(result, BlobMetaResult) or not result.is_success:
            raise TransferError(f"blob metadata change refused: {getattr(result, 'error', result)}")
        return result

    async def record_holder(self, digest: str, size: int, policy: ReplicationPolicy) -> None:
        """List this node as a holder of `digest` (creating the record with `policy`)."""
        await self._change(blobmeta.BlobHolderAdd(digest, size, self.node_id, policy.replication_factor))

    async def forget_holder(self, digest: str) -> None:
        await self._change(blobmeta.BlobHolderRemove(digest, self.node_id))
