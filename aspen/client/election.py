"""Leader election, a client recipe over the lock layer, in the manner of etcd's
`client/v3/concurrency` election:

    election = client.election("scheduler", ttl_ms=10_000)
    term = await election.campaign()          # blocks until this candidate leads; its fencing token
    while election.is_leader():
        await do_leader_work(fencing_token=term)
    await election.resign()

Rules the recipe keeps:
- Leading = holding the lock `election:<name>`; the term is the lock's fencing token, so terms
  strictly increase across resignations, crashes and expiries, and a deposed leader's writes can
  be refused by any store that checks tokens.
- A background task renews the lock every `ttl_ms / 3`. `is_leader()` is conservative: it is true
  only until `ttl_ms` after the *sending* of the last successful renewal (the leader stamped the
  new deadline later than that, so the lock outlives our belief), minus nothing else: a clock
  difference between cluster nodes after a Raft leader change is not covered.
- A renewal refused by the cluster (someone else holds the lock: ours expired) ends the term at
  once; a renewal that cannot reach the cluster is retried until the belief runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aspen.api.errors import AspenError
from aspen.client.coordination import CoordinationError
from aspen.client.locks import DEFAULT_WAIT_MS, LockMixin, new_holder_id

DEFAULT_ELECTION_TTL_MS = 10_000
#: Longest campaign wait by default (a campaign is normally retried by its caller).
DEFAULT_CAMPAIGN_MS = 30_000


def lock_key(name: str) -> str:
    return f"election:{name}"


class Election:
    """One candidate in the election `name`."""

    def __init__(
        self,
        client: LockMixin,
        name: str,
        *,
        candidate_id: str | None = None,
        ttl_ms: int = DEFAULT_ELECTION_TTL_MS,
    ) -> None:
        if ttl_ms < 30:
            raise ValueError("ttl_ms must be at least 30 (renewals run every ttl_ms / 3)")
        self.name, self.ttl_ms = name, ttl_ms
        self.candidate_id = candidate_id or new_holder_id()
        self._lock = client.lock(lock_key(name), ttl_ms=ttl_ms, holder_id=self.candidate_id)
        self._valid_until = 0.0
        self._renewer: asyncio.Task[None] | None = None
        #: Set when a term ends by itself (renewal refused, or the cluster unreachable for a TTL).
        self.lost = asyncio.Event()

    @property
    def term(self) -> int | None:
        """The fencing token of the current term while this candidate leads, else None."""
        return self._lock.token if self.is_leader() else None

    def is_leader(self) -> bool:
        return self._lock.token is not None and time.monotonic() < self._valid_until

    async def campaign(self, timeout_ms: int = DEFAULT_CAMPAIGN_MS) -> int:
        """Wait up to `timeout_ms` to lead; returns the term (fencing token) or raises
        `LockNotAcquired`. Renewal starts at once."""
        sent = time.monotonic()
        token = await self._lock.acquire(timeout_ms or DEFAULT_WAIT_MS)
        self._valid_until = sent + self.ttl_ms / 1000
        self.lost.clear()
        self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())
        return token

    async def _renew_loop(self) -> None:
        period = self.ttl_ms / 3000
        # Bounded: a term lasts at most a day (then it ends as if lost, and the caller campaigns
        # again); a refused or long-failing renewal ends it earlier.
        for _ in range(int(86_400 / period) + 1):
            await asyncio.sleep(period)
            sent = time.monotonic()
            try:
                await self._lock.renew()
            except AspenError as err:
                if not _refused(err) and time.monotonic() < self._valid_until:
                    continue  # unreachable for now: keep trying while our belief lasts
                self._lock.token = None
                self.lost.set()
                return
            self._valid_until = sent + self.ttl_ms / 1000
        self._lock.token = None
        self.lost.set()

    async def _stop_renewing(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def resign(self) -> None:
        """Stop leading (if leading): stop renewing and release the lock, so the next candidate is
        elected at once instead of after the TTL."""
        await self._stop_renewing()
        self._valid_until = 0.0
        with contextlib.suppress(AspenError):  # a lost lock needs no release
            await self._lock.release()
        self._lock.token = None

    async def __aenter__(self) -> int:
        return await self.campaign()

    async def __aexit__(self, *exc: object) -> None:
        await self.resign()


def _refused(err: AspenError) -> bool:
    """A domain answer means the cluster saw our renewal and said no (the lock is not ours)."""
    return isinstance(err, CoordinationError)


__all__ = ["DEFAULT_ELECTION_TTL_MS", "Election", "lock_key"]
