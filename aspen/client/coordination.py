"""Coordination primitives in the client: flat methods mixed into `AspenClient` (and so available,
blocking, on `SyncAspenClient`), and small handles for idiomatic async use:

    async with AspenClient(ticket) as client:
        hits = client.counter("hits")
        await hits.incr()                 # -> 1
        ids = client.sequence("orders")
        first = await ids.reserve(10)     # IDs first .. first+9 are ours

Handle methods return the value and raise `CoordinationError` on a domain failure (a failed cas,
an exhausted sequence); the flat methods return the wire result for callers (like the CLI) that
report failures themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aspen.api import coordination as c
from aspen.api.errors import AspenError
from aspen.client.coord_barrier import BarrierHandles
from aspen.client.coord_queue import QueueMixin
from aspen.client.coord_semaphore import SemaphoreHandles
from aspen.client.coord_service import ServiceRegistry


class CoordinationError(AspenError):
    """A coordination operation failed in the domain (its result had `is_success=false`)."""


def _value(res: c.CounterResult | c.SignedCounterResult | c.SequenceResult) -> int:
    if not res.is_success or res.value is None:
        raise CoordinationError(res.error or "operation failed")
    return res.value


class CoordinationMixin(
    SemaphoreHandles,
    QueueMixin,
    BarrierHandles,
):
    """Flat coordination methods; `AspenClient` provides `_call`."""

    if TYPE_CHECKING:

        async def call(self, request: Any) -> Any: ...

    def counter(self, key: str) -> Counter:
        return Counter(self, key)

    def signed_counter(self, key: str) -> SignedCounter:
        return SignedCounter(self, key)

    def sequence(self, key: str) -> Sequence:
        return Sequence(self, key)

    def service_registry(self) -> ServiceRegistry:
        return ServiceRegistry(self)


class Counter:
    """An unsigned counter (saturating at 0): every method returns the value after the operation."""

    __slots__ = ("_client", "key")

    def __init__(self, client: CoordinationMixin, key: str) -> None:
        self._client, self.key = client, key

    async def get(self) -> int:
        return _value(await self._client.call(c.CounterGet(key=self.key)))

    async def incr(self) -> int:
        return _value(await self._client.call(c.CounterIncrement(key=self.key)))

    async def decr(self) -> int:
        return _value(await self._client.call(c.CounterDecrement(key=self.key)))

    async def add(self, amount: int) -> int:
        return _value(await self._client.call(c.CounterAdd(key=self.key, amount=amount)))

    async def sub(self, amount: int) -> int:
        return _value(await self._client.call(c.CounterSubtract(key=self.key, amount=amount)))

    async def set(self, value: int) -> int:
        return _value(await self._client.call(c.CounterSet(key=self.key, value=value)))

    async def compare_and_set(self, expected: int, new_value: int) -> bool:
        """True if the counter was `expected` and is now `new_value`; False if it held another value."""
        res = await self._client.call(
            c.CounterCompareAndSet(key=self.key, expected=expected, new_value=new_value)
        )
        if res.is_success:
            return True
        if res.value is None:  # rejected (bad input), not a mismatch
            raise CoordinationError(res.error or "operation failed")
        return False


class SignedCounter:
    """A signed (i64, saturating) counter sharing the key space of `Counter`."""

    __slots__ = ("_client", "key")

    def __init__(self, client: CoordinationMixin, key: str) -> None:
        self._client, self.key = client, key

    async def get(self) -> int:
        return _value(await self._client.call(c.SignedCounterGet(key=self.key)))

    async def add(self, amount: int) -> int:
        return _value(await self._client.call(c.SignedCounterAdd(key=self.key, amount=amount)))


class Sequence:
    """Unique increasing IDs: `next()` gives 1, 2, 3, ...; `reserve(n)` the first of n consecutive IDs."""

    __slots__ = ("_client", "key")

    def __init__(self, client: CoordinationMixin, key: str) -> None:
        self._client, self.key = client, key

    async def next(self) -> int:
        return _value(await self._client.call(c.SequenceNext(key=self.key)))

    async def reserve(self, count: int) -> int:
        return _value(await self._client.call(c.SequenceReserve(key=self.key, count=count)))

    async def current(self) -> int:
        """The ID the next `next()` would return (nothing is reserved)."""
        return _value(await self._client.call(c.SequenceCurrent(key=self.key)))


__all__ = ["CoordinationError", "CoordinationMixin", "Counter", "Sequence", "SignedCounter"]
