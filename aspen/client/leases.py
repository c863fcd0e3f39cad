"""Lease methods of `AspenClient` (a mixin, so the lease API lives apart from the KV one).

    async with client.lease(ttl_seconds=10) as lease:
        await client.set_with_lease("svc/a", b"up", lease.lease_id)
        ...                       # kept alive in the background; `lease.lost` is set if that fails
    # revoked on exit: its keys are gone

Domain failures come back as results (`is_success=False`, `error`), as for KV; only `lease()` raises
`ValueError` when the grant is refused (e.g. a TTL of 0), since it has no result to return.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from aspen.api import lease_messages as lm
from aspen.api import messages as m
from aspen.api.errors import AspenError

R = TypeVar("R")
log = structlog.get_logger("aspen.client.leases")


@dataclass
class Lease:
    """A granted lease held by `AspenClient.lease()`."""

    lease_id: int
    ttl_seconds: int
    #: Set when a keepalive failed (the lease expired or was revoked): its keys may be gone.
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    #: The error of the failed keepalive, when `lost` is set.
    error: str | None = None


class LeaseMethods:
    """Mixed into `AspenClient`, which provides `_call`."""

    async def _call(self, request: m.Request, kind: type[R]) -> R:  # pragma: no cover - overridden
        raise NotImplementedError

    async def lease_grant(self, ttl_seconds: int, *, lease_id: int | None = None) -> lm.LeaseGrantResult:
        """Grant a lease of `ttl_seconds`; the cluster picks the id unless `lease_id` is given."""
        return await self._call(
            lm.LeaseGrant(ttl_seconds=ttl_seconds, lease_id=lease_id), lm.LeaseGrantResult
        )

    async def lease_revoke(self, lease_id: int) -> lm.LeaseRevokeResult:
        """Revoke a lease, deleting every key attached to it; an unknown lease is a failure result
        (`is_success=False`, "lease not found"), as for keepalive."""
        return await self._call(lm.LeaseRevoke(lease_id=lease_id), lm.LeaseRevokeResult)

    async def lease_keepalive(self, lease_id: int) -> lm.LeaseKeepaliveResult:
        """Restart the lease's TTL from now (the leader's clock)."""
        return await self._call(lm.LeaseKeepalive(lease_id=lease_id), lm.LeaseKeepaliveResult)

    async def lease_ttl(
        self, lease_id: int, *, include_keys: bool = False, stale: bool = False
    ) -> lm.LeaseTimeToLiveResult:
        """Granted and remaining TTL (and optionally the attached keys) of a lease."""
        return await self._call(
            lm.LeaseTimeToLive(lease_id=lease_id, include_keys=include_keys, stale=stale),
            lm.LeaseTimeToLiveResult,
        )

    async def lease_list(self, *, stale: bool = False) -> lm.LeaseListResult:
        """Every unexpired lease."""
        return await self._call(lm.LeaseList(stale=stale), lm.LeaseListResult)

    async def set_with_lease(self, key: str, value: bytes, lease_id: int) -> m.WriteResult:
        """Set `key` attached to `lease_id`: the key is deleted when the lease is revoked or expires."""
        return await self._call(lm.WriteKeyWithLease(key=key, value=value, lease_id=lease_id), m.WriteResult)

    @contextlib.asynccontextmanager
    async def lease(
        self, ttl_seconds: int, *, keepalive_every_s: float | None = None
    ) -> AsyncIterator[Lease]:
        """Grant a lease, keep it alive (every third of its TTL unless told) while the block runs,
        and revoke it on exit (if the cluster cannot be reached then, the lease simply expires).
        Raises `ValueError` if the grant is refused."""
        res = await self.lease_grant(ttl_seconds)
        if not res.is_success or res.lease_id is None:
            raise ValueError(f"lease grant refused: {res.error}")
        lease = Lease(res.lease_id, ttl_seconds)
        interval = keepalive_every_s if keepalive_every_s is not None else max(ttl_seconds / 3, 0.1)
        task = asyncio.create_task(self._keep_alive(lease, interval), name=f"lease-{lease.lease_id}")
        try:
            yield lease
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self.lease_revoke(lease.lease_id)
            except AspenError as err:
                # Not raised over the block's own outcome: unrenewed, the lease expires by itself
                # within its TTL and the leader deletes its keys then.
                log.warning("lease revoke on exit failed", lease_id=lease.lease_id, error=str(err))

    async def _keep_alive(self, lease: Lease, interval: float) -> None:
        # Bounded by the lease's life: it ends when the block exits (cancel) or a keepalive fails.
        while True:
            await asyncio.sleep(interval)  # the renewal period, not a synchronisation wait
            try:
                res = await self.lease_keepalive(lease.lease_id)
            except AspenError as err:  # transient (no leader, timeout): try again next period
                log.warning("lease keepalive failed", lease_id=lease.lease_id, error=str(err))
                continue
            if not res.is_success:
                lease.error = res.error
                lease.lost.set()
                return


__all__ = ["Lease", "LeaseMethods"]
