"""Lease requests on the node, and the leader's expiry sweeper.

Where time comes from:
- Grant, keepalive and WriteKeyWithLease are stamped with `now_ms` from the wall clock of the node
  that proposes them, which is always the leader (a follower forwards the request). The state
  machine stores the absolute expiry `now_ms + ttl` and never reads a clock itself.
- Only the leader expires leases: `LeaseExpirer` asks the local state machine which leases are
  expired by the leader's clock and proposes one `LeaseRevokeExpired` naming at most
  `MAX_EXPIRED_PER_COMMAND` of them, carrying that `now_ms`. Apply re-checks each lease against the
  command's `now_ms`, so one renewed meanwhile survives. Followers never expire anything; after a
  leader change the new leader's sweeper takes over within one interval.
- TTL reads (`LeaseTimeToLive`, `LeaseList`) compute the remaining time from the answering node's
  clock against the stored absolute expiry: with skewed clocks two nodes can report different
  remaining times for one lease, but nobody's clock changes what is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import structlog

from aspen import kv
from aspen.api import lease_messages as lm
from aspen.api import messages as m
from aspen.kv.lease_commands import ERR_LEASE_NOT_FOUND
from aspen.node.clock import now_ms
from aspen.raft.core.types import StateRole
from aspen.raft.errors import RaftError
from aspen.raft.node import RaftNode

log = structlog.get_logger("aspen.node.leases")

#: Answer of a TTL read for a lease that is unknown or expired by the reader's clock (the original
#: Aspen's wording).
ERR_TTL_NOT_FOUND: Final = "Lease not found or expired"
#: How often the leader looks for expired leases. Lease TTLs are whole seconds, so a key outlives
#: its lease by at most about this long (plus the time to commit the revocation).
EXPIRY_INTERVAL_S: Final = 0.5
EXPIRY_PROPOSE_TIMEOUT_S: Final = 10.0


class Seam(Protocol):
    """What the lease handlers need of the node: the `Proposer` (aspen.node.proposer)."""

    async def propose(self, command: Any, size: int) -> Any: ...

    async def barrier(self, stale: bool = False) -> None: ...


class LeaseService:
    """Handlers for the lease requests, over the node's one seam to the state machine."""

    def __init__(self, state: kv.KvStateMachine, proposer: Seam, clock: Callable[[], int] = now_ms) -> None:
        self._kv = state
        self._propose = proposer.propose
        self._barrier = proposer.barrier
        self._clock = clock

    def handlers(self) -> dict[str, Callable[[Any], Awaitable[Any]]]:
        return {
            "LeaseGrant": self.grant,
            "LeaseRevoke": self.revoke,
            "LeaseKeepalive": self.keepalive,
            "LeaseTimeToLive": self.time_to_live,
            "LeaseList": self.list,
            "WriteKeyWithLease": self.write_with_lease,
        }

    async def grant(self, req: lm.LeaseGrant) -> lm.LeaseGrantResult:
        cmd = kv.LeaseGrant(req.ttl_seconds, self._clock(), req.lease_id or None)
        error = kv.validate(cmd)
        if error is not None:
            return lm.LeaseGrantResult(is_success=False, error=error)
        res: kv.LeaseGrantResult = await self._propose(cmd, 32)
        return lm.LeaseGrantResult(
            is_success=res.is_success, lease_id=res.lease_id, ttl_seconds=res.ttl_seconds, error=res.error
        )

    async def revoke(self, req: lm.LeaseRevoke) -> lm.LeaseRevokeResult:
        cmd = kv.LeaseRevoke(req.lease_id)
        error = kv.validate(cmd)
        if error is not None:
            return lm.LeaseRevokeResult(is_success=False, error=error)
        if self._kv.lease(req.lease_id) is None:
            # Said here, not by the state machine (which revokes an unknown id as a no-op): like
            # keepalive and ttl, revoking a lease that is not there is a failure the caller sees.
            # Checked against the leader's applied state; a revoke racing another revoke of the
            # same lease can still both succeed, the second deleting 0 keys. An expired lease not
            # yet swept is still there, and revoking it deletes its keys at once.
            return lm.LeaseRevokeResult(is_success=False, error=ERR_LEASE_NOT_FOUND)
        res: kv.LeaseRevokeResult = await self._propose(cmd, 16)
        return lm.LeaseRevokeResult(is_success=res.is_success, keys_deleted=res.keys_deleted, error=res.error)

    async def keepalive(self, req: lm.LeaseKeepalive) -> lm.LeaseKeepaliveResult:
        cmd = kv.LeaseKeepalive(req.lease_id, self._clock())
        error = kv.validate(cmd)
        if error is not None:
            return lm.LeaseKeepaliveResult(is_success=False, error=error)
        res: kv.LeaseKeepaliveResult = await self._propose(cmd, 24)
        return lm.LeaseKeepaliveResult(
            is_success=res.is_success, lease_id=res.lease_id, ttl_seconds=res.ttl_seconds, error=res.error
        )

    async def write_with_lease(self, req: lm.WriteKeyWithLease) -> m.WriteResult:
        cmd = kv.WriteWithLease(req.key, req.value, req.lease_id, self._clock())
        error = kv.validate(cmd)
        if error is not None:
            return m.WriteResult(is_success=False, error=error)
        res: kv.WriteResult = await self._propose(cmd, len(req.key) + len(req.value) + 24)
        return m.WriteResult(is_success=res.is_success, error=res.error)

    async def time_to_live(self, req: lm.LeaseTimeToLive) -> lm.LeaseTimeToLiveResult:
        await self._barrier(req.stale)
        info = self._kv.lease(req.lease_id)
        now = self._clock()
        if info is None or info.is_expired(now):
            return lm.LeaseTimeToLiveResult(is_success=False, lease_id=req.lease_id, error=ERR_TTL_NOT_FOUND)
        return lm.LeaseTimeToLiveResult(
            is_success=True,
            lease_id=info.lease_id,
            granted_ttl_seconds=info.ttl_seconds,
            remaining_ttl_seconds=info.remaining_ms(now) // 1000,
            keys=self._kv.lease_keys(info.lease_id) if req.include_keys else None,
        )

    async def list(self, req: lm.LeaseList) -> lm.LeaseListResult:
        await self._barrier(req.stale)
        now = self._clock()
        return lm.LeaseListResult(
            is_success=True,
            leases=[
                lm.LeaseListEntry(
                    lease_id=info.lease_id,
                    granted_ttl_seconds=info.ttl_seconds,
                    remaining_ttl_seconds=info.remaining_ms(now) // 1000,
                    attached_keys=info.key_count,
                )
                for info in self._kv.leases()
                if not info.is_expired(now)
            ],
        )


class LeaseExpirer:
    """The leader's sweeper: every `interval_s`, revoke (through Raft) leases expired by its clock.

    One round proposes at most one command of at most `MAX_EXPIRED_PER_COMMAND` leases; when a round
    found a full batch the next one starts without waiting, so a backlog drains at full speed while
    each log entry stays bounded. Nothing happens on a follower.
    """

    def __init__(
        self,
        raft: RaftNode,
        state: kv.KvStateMachine,
        *,
        interval_s: float = EXPIRY_INTERVAL_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._raft = raft
        self._kv = state
        self._interval_s = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        #: Leases revoked by this node's sweeper since start (for tests and logs).
        self.revoked_total = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lease-expirer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            full = False
            try:
                full = await self.sweep_once()
            except RaftError as err:  # lost leadership, timed out, shutting down: try next round
                log.debug("lease expiry round failed", error=str(err))
            except Exception:  # never let the sweeper die: expiry would silently stop
                log.exception("lease expiry round crashed")
            if not full:
                await asyncio.sleep(self._interval_s)  # the period of a periodic task, not a sync wait

    async def sweep_once(self) -> bool:
        """One round; True if it proposed a full batch (more expired leases may be waiting)."""
        if self._raft.role != StateRole.LEADER:
            return False
        now = self._clock()
        ids = self._kv.expired_leases(now, kv.MAX_EXPIRED_PER_COMMAND)
        if not ids:
            return False
        res: kv.LeaseRevokeExpiredResult = await self._raft.propose(
            kv.LeaseRevokeExpired(tuple(ids), now), size=16 + 10 * len(ids), timeout=EXPIRY_PROPOSE_TIMEOUT_S
        )
        self.revoked_total += len(res.revoked)
        if res.revoked:
            log.info("expired leases revoked", leases=list(res.revoked), keys_deleted=res.keys_deleted)
        return len(ids) == kv.MAX_EXPIRED_PER_COMMAND


__all__ = ["ERR_TTL_NOT_FOUND", "LeaseExpirer", "LeaseService"]
