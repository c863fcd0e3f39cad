"""Blob metadata: which nodes hold a hash, as a replica record in the replicated KV store.

Every change is compare-and-swap on the record, retried on conflicts; reads are linearizable (a
read barrier, then the local state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aspen import kv
from aspen.api import messages as m
from aspen.blob.policy import ReplicaRecord, ReplicationPolicy, meta_key
from aspen.node.blobs.framing import TransferError
from aspen.raft.node import RaftNode

__all__ = ["CAS_ATTEMPTS", "META_TIMEOUT_S", "BlobMetadata", "Submit"]

log = logging.getLogger(__name__)

Submit = Callable[[m.Request], Awaitable[m.Response]]

CAS_ATTEMPTS = 16
META_TIMEOUT_S = 10.0


def _now_micros() -> int:
    return int(time.time() * 1_000_000)


class BlobMetadata:
    def __init__(
        self, *, node_id: int, raft: RaftNode, kv_state: Callable[[], kv.KvStateMachine], submit: Submit
    ) -> None:
        self.node_id = node_id
        self.raft = raft
        self._kv = kv_state
        self._submit = submit

    async def barrier(self) -> None:
        await self.raft.read_barrier(timeout=META_TIMEOUT_S)

    def view(self) -> kv.KvStateMachine:
        return self._kv()

    async def read_record(self, digest: str) -> tuple[ReplicaRecord | None, bytes | None]:
        """The replica record of `digest` at a linearizable point (and its raw value, for CAS)."""
        await self.barrier()
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

    async def record_holder(self, digest: str, size: int, policy: ReplicationPolicy) -> None:
        """List this node as a holder of `digest` (creating the record with `policy`)."""

        def add(rec: ReplicaRecord | None) -> ReplicaRecord | None:
            if rec is None:
                return ReplicaRecord(digest, size, (self.node_id,), policy, _now_micros())
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
