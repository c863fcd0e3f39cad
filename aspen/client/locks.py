"""Locks, lock sets, read-write locks and rate limiters in the client: flat methods (mixed into
`AspenClient` through `CoordinationMixin`, returning the wire results, as the CLI wants them) and
idiomatic handles:

    async with client.lock("jobs", ttl_ms=30_000) as token:      # blocks up to 5 s, then raises
        await storage.write(data, fencing_token=token)           # released on exit

    rw = client.rwlock("config")
    async with rw.read():  ...
    async with rw.write() as token: ...

    limiter = client.rate_limiter("api", capacity=100, rate=10.0)
    if await limiter.try_acquire(): ...

Handles raise `CoordinationError` (or its subclass `LockNotAcquired`) on a domain failure.

A blocking request waits on the leader, so its RPC deadline is the wait plus a margin, whatever the
client's default timeout; a long wait is cut into slices (`aspen.client.coord_wait.call_waiting`),
so a request forwarded by a follower never outlives the follower's forwarding deadline.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aspen.api import locks as w
from aspen.api.errors import ErrorCode, OutcomeUnknownError
from aspen.api.wire import TIMED_OUT
from aspen.client.coordination import CoordinationError
from aspen.client.operations import OperationCalls

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")

DEFAULT_WAIT_MS = 5_000
DEFAULT_TTL_MS = 30_000


class LockNotAcquired(CoordinationError):
    """A lock (or rwlock, or lock set) could not be acquired."""


class LockTimeout(LockNotAcquired):
    """The wait for a lock ran out: code TIMEOUT, like every other timeout. Unlike
    `OutcomeUnknownError` the outcome is known: the lock was not taken."""

    code = ErrorCode.TIMEOUT


def _not_acquired(result: Any, default: str) -> LockNotAcquired:
    """The error for a failed acquisition: `LockTimeout` when the node's wait ran out."""
    error: str | None = getattr(result, "error", None)
    return (LockTimeout if getattr(result, "status", None) == TIMED_OUT else LockNotAcquired)(
        error or default
    )


def new_holder_id() -> str:
    """A holder id unique to this process and call: locks are not re-entrant, holders must differ."""
    return f"py-{secrets.token_hex(8)}"


class LockMixin(OperationCalls):
    """Lock handles and flat rwlock and rate-limiter methods (the lock and lock-set flat methods
    are derived from their declarations); `AspenClient` provides `request`, `_call` and `timeout`."""

    if TYPE_CHECKING:
        timeout: float

        async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

        async def get(self, key: str, *, stale: bool = False) -> bytes | None: ...

    # ------------------------------------------------------------------------------------ lock --
    def lock(
        self,
        key: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        holder_id: str | None = None,
        timeout_ms: int = DEFAULT_WAIT_MS,
    ) -> Lock:
        return Lock(self, key, ttl_ms=ttl_ms, holder_id=holder_id, timeout_ms=timeout_ms)

    # -------------------------------------------------------------------------------- lock set --
    def lock_set(
        self,
        keys: Sequence[str],
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        holder_id: str | None = None,
        timeout_ms: int = DEFAULT_WAIT_MS,
    ) -> LockSet:
        return LockSet(self, keys, ttl_ms=ttl_ms, holder_id=holder_id, timeout_ms=timeout_ms)

    # ---------------------------------------------------------------------------- rate limiter --
    def rate_limiter(self, key: str, *, capacity: int, rate: float) -> RateLimiter:
        return RateLimiter(self, key, capacity=capacity, rate=w.check_rate(rate))

    # ---------------------------------------------------------------------------------- rwlock --
    def rwlock(self, name: str, *, holder_id: str | None = None, ttl_ms: int = DEFAULT_TTL_MS) -> RwLock:
        return RwLock(self, name, holder_id=holder_id, ttl_ms=ttl_ms)


# ------------------------------------------------------------------------------------- handles --
class Lock:
    """One holder's view of a lock key. `async with` acquires (waiting up to `timeout_ms`), yields
    the fencing token and releases on exit. Not re-entrant; one handle holds at most once."""

    def __init__(
        self,
        client: LockMixin,
        key: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        holder_id: str | None = None,
        timeout_ms: int = DEFAULT_WAIT_MS,
    ) -> None:
        self._client, self.key, self.ttl_ms, self.timeout_ms = client, key, ttl_ms, timeout_ms
        self.holder_id = holder_id or new_holder_id()
        #: The fencing token while held (as far as this handle knows), else None.
        self.token: int | None = None
        self.deadline_ms: int | None = None
        #: The highest token this handle was ever given. A new acquisition always gets a higher one,
        #: which tells it apart from an earlier hold of ours whose release did not get through.
        self._last_token = 0

    async def acquire(self, timeout_ms: int | None = None) -> int:
        """Wait for the lock; returns the fencing token or raises `LockNotAcquired`."""
        if self.token is not None:
            raise CoordinationError(f"lock '{self.key}' is already held by this handle (not re-entrant)")
        wait = self.timeout_ms if timeout_ms is None else timeout_ms
        try:
            res = await self._client.call(
                w.LockAcquire(key=self.key, holder_id=self.holder_id, ttl_ms=self.ttl_ms, timeout_ms=wait)
            )
        except OutcomeUnknownError:
            # The acquire may have been applied (the leader failed after commit): look it up. If it
            # is not visible yet but commits later, the lock stays unused until its TTL runs out.
            if await self._recover():
                assert self.token is not None
                return self.token
            raise
        return self._took(res)

    async def try_acquire(self) -> int | None:
        """The fencing token if the lock was free, else None (raises on a rejected request)."""
        res = await self._client.call(
            w.LockTryAcquire(key=self.key, holder_id=self.holder_id, ttl_ms=self.ttl_ms)
        )
        if not res.is_success and res.holder_id is not None:
            return None
        return self._took(res)

    def _took(self, res: w.LockResult) -> int:
        if not res.is_success or res.fencing_token is None:
            raise _not_acquired(res, "lock not acquired")
        self.token, self.deadline_ms = res.fencing_token, res.deadline_ms
        self._last_token = max(self._last_token, res.fencing_token)
        return res.fencing_token

    async def _recover(self) -> bool:
        # Imported here: the record layout is the layer's, and the client (and the CLI, whose every
        # start pays for its imports) otherwise never needs the state machine's modules.
        from aspen.layers.lock import storage_key

        value = await self._client.get(storage_key(self.key))
        if value is None:
            return False
        record = json.loads(value)
        if record.get("holder_id") != self.holder_id or not record.get("deadline_ms"):
            return False
        if record["fencing_token"] <= self._last_token:
            # Our earlier hold, whose release failed: not the acquisition that was in doubt.
            return False
        self.token, self.deadline_ms = record["fencing_token"], record["deadline_ms"]
        self._last_token = record["fencing_token"]
        return True

    async def renew(self, ttl_ms: int | None = None) -> int:
        """Extend the lock by `ttl_ms` from now (leader's clock); returns the new deadline (Unix ms)."""
        if self.token is None:
            raise CoordinationError("lock not held")
        res = await self._client.call(
            w.LockRenew(
                key=self.key, holder_id=self.holder_id, fencing_token=self.token, ttl_ms=ttl_ms or self.ttl_ms
            )
        )
        if not res.is_success or res.deadline_ms is None:
            raise CoordinationError(res.error or "renew failed")
        deadline: int = res.deadline_ms
        self.deadline_ms = deadline
        return deadline

    async def release(self) -> None:
        if self.token is None:
            return
        token, self.token, self.deadline_ms = self.token, None, None
        res = await self._client.call(
            w.LockRelease(key=self.key, holder_id=self.holder_id, fencing_token=token)
        )
        if not res.is_success:
            raise CoordinationError(res.error or "release failed")

    async def __aenter__(self) -> int:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class LockSet:
    """Several lock keys taken all or nothing; `async with` yields the tokens (aligned with `keys`)."""

    def __init__(
        self,
        client: LockMixin,
        keys: Sequence[str],
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        holder_id: str | None = None,
        timeout_ms: int = DEFAULT_WAIT_MS,
    ) -> None:
        self._client, self.keys, self.ttl_ms, self.timeout_ms = client, list(keys), ttl_ms, timeout_ms
        self.holder_id = holder_id or new_holder_id()
        self.tokens: list[int] | None = None

    def _took(self, res: w.LockSetResult) -> list[int]:
        if not res.is_success or res.fencing_tokens is None:
            raise _not_acquired(res, "lock set not acquired")
        self.tokens = list(res.fencing_tokens)
        return self.tokens

    async def acquire(self, timeout_ms: int | None = None) -> list[int]:
        wait = self.timeout_ms if timeout_ms is None else timeout_ms
        return self._took(
            await self._client.call(
                w.LockSetAcquire(
                    keys=self.keys, holder_id=self.holder_id, ttl_ms=self.ttl_ms, timeout_ms=wait
                )
            )
        )

    async def try_acquire(self) -> list[int] | None:
        res = await self._client.call(
            w.LockSetTryAcquire(keys=self.keys, holder_id=self.holder_id, ttl_ms=self.ttl_ms)
        )
        if not res.is_success and res.blocked_member is not None:
            return None
        return self._took(res)

    async def renew(self, ttl_ms: int | None = None) -> int:
        if self.tokens is None:
            raise CoordinationError("lock set not held")
        res = await self._client.call(
            w.LockSetRenew(
                keys=self.keys,
                holder_id=self.holder_id,
                fencing_tokens=self.tokens,
                ttl_ms=ttl_ms or self.ttl_ms,
            )
        )
        if not res.is_success or res.deadline_ms is None:
            raise CoordinationError(res.error or "renew failed")
        deadline: int = res.deadline_ms
        return deadline

    async def release(self) -> None:
        if self.tokens is None:
            return
        tokens, self.tokens = self.tokens, None
        res = await self._client.call(
            w.LockSetRelease(keys=self.keys, holder_id=self.holder_id, fencing_tokens=tokens)
        )
        if not res.is_success:
            raise CoordinationError(res.error or "release failed")

    async def __aenter__(self) -> list[int]:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class RwLock:
    """One holder's view of a read-write lock: `async with rw.read():` / `async with rw.write() as token:`."""

    def __init__(
        self, client: LockMixin, name: str, *, holder_id: str | None = None, ttl_ms: int = DEFAULT_TTL_MS
    ) -> None:
        self._client, self.name, self.ttl_ms = client, name, ttl_ms
        self.holder_id = holder_id or new_holder_id()
        #: The write token while this handle holds the write lock.
        self._token: int | None = None

    @asynccontextmanager
    async def read(self, timeout_ms: int = DEFAULT_WAIT_MS) -> AsyncIterator[None]:
        res = await self._client.call(
            w.RWLockAcquireRead(
                name=self.name, holder_id=self.holder_id, ttl_ms=self.ttl_ms, timeout_ms=timeout_ms
            )
        )
        if not res.is_success:
            raise _not_acquired(res, "read lock not acquired")
        try:
            yield
        finally:
            await self._client.call(w.RWLockReleaseRead(name=self.name, holder_id=self.holder_id))

    @asynccontextmanager
    async def write(self, timeout_ms: int = DEFAULT_WAIT_MS) -> AsyncIterator[int]:
        """Yields the write fencing token; releases the write lock on exit (or the read lock, after
        `downgrade`)."""
        res = await self._client.call(
            w.RWLockAcquireWrite(
                name=self.name, holder_id=self.holder_id, ttl_ms=self.ttl_ms, timeout_ms=timeout_ms
            )
        )
        if not res.is_success or res.fencing_token is None:
            raise _not_acquired(res, "write lock not acquired")
        self._token = res.fencing_token
        try:
            yield res.fencing_token
        finally:
            if self._token is not None:
                await self._client.call(
                    w.RWLockReleaseWrite(name=self.name, holder_id=self.holder_id, fencing_token=self._token)
                )
            else:
                await self._client.call(w.RWLockReleaseRead(name=self.name, holder_id=self.holder_id))

    async def downgrade(self) -> int:
        """Turn the write lock held by this handle into a read lock; the token is kept."""
        token = self._token
        if token is None:
            raise CoordinationError("write lock not held")
        res = await self._client.call(
            w.RWLockDowngrade(
                name=self.name, holder_id=self.holder_id, fencing_token=token, ttl_ms=self.ttl_ms
            )
        )
        if not res.is_success:
            raise CoordinationError(res.error or "downgrade failed")
        self._token = None
        return token

    async def status(self) -> w.RWLockStatusResult:
        res: w.RWLockStatusResult = await self._client.call(w.RWLockStatus(name=self.name))
        return res


class RateLimiter:
    """A token bucket of `capacity` tokens refilled at `rate` tokens/s."""

    def __init__(self, client: LockMixin, key: str, *, capacity: int, rate: float) -> None:
        self._client, self.key, self.capacity, self.rate = client, key, capacity, rate

    async def try_acquire(self, tokens: int = 1) -> bool:
        res: w.RateLimiterResult = await self._client.call(
            w.RateLimiterTryAcquire(
                key=self.key, capacity=self.capacity, refill_rate=self.rate, tokens=tokens
            )
        )
        if not res.is_success and res.retry_after_ms is None:
            raise CoordinationError(res.error or "rate limiter failed")
        return res.is_success

    async def acquire(self, tokens: int = 1, timeout_ms: int = DEFAULT_WAIT_MS) -> int:
        """Wait for `tokens`; returns the whole tokens left, or raises `CoordinationError`."""
        res: w.RateLimiterResult = await self._client.call(
            w.RateLimiterAcquire(
                key=self.key,
                capacity=self.capacity,
                refill_rate=self.rate,
                tokens=tokens,
                timeout_ms=timeout_ms,
            )
        )
        if not res.is_success or res.tokens_remaining is None:
            raise CoordinationError(res.error or "rate limited")
        return res.tokens_remaining

    async def available(self) -> int:
        res: w.RateLimiterResult = await self._client.call(
            w.RateLimiterAvailable(key=self.key, capacity=self.capacity, refill_rate=self.rate)
        )
        if not res.is_success or res.tokens_remaining is None:
            raise CoordinationError(res.error or "rate limiter failed")
        return res.tokens_remaining

    async def reset(self) -> None:
        res: w.RateLimiterResult = await self._client.call(
            w.RateLimiterReset(key=self.key, capacity=self.capacity, refill_rate=self.rate)
        )
        if not res.is_success:
            raise CoordinationError(res.error or "rate limiter failed")


__all__ = [
    "Lock",
    "LockMixin",
    "LockNotAcquired",
    "LockSet",
    "LockTimeout",
    "RateLimiter",
    "RwLock",
    "new_holder_id",
]
