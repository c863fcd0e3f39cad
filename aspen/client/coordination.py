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

from typing import TYPE_CHECKING, TypeVar

from aspen.api import coordination as c
from aspen.api.errors import AspenError
from aspen.client.coord_barrier import BarrierMixin
from aspen.client.coord_queue import QueueMixin
from aspen.client.coord_semaphore import SemaphoreMixin
from aspen.client.coord_service import ServiceRegistryMixin

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")


class CoordinationError(AspenError):
    """A coordination operation failed in the domain (its result had `is_success=false`)."""


def _value(res: c.CounterResult | c.SignedCounterResult | c.SequenceResult) -> int:
    if not res.is_success or res.value is None:
        raise CoordinationError(res.error or "operation failed")
    return res.value


class CoordinationMixin(
    SemaphoreMixin,
    QueueMixin,
    BarrierMixin,
    ServiceRegistryMixin,
):
    """Flat coordination methods; `AspenClient` provides `_call`."""

    if TYPE_CHECKING:

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

    # -------------------------------------------------------------------------------- counter --
    async def counter_get(self, key: str) -> c.CounterResult:
        return await self._call(c.CounterGet(key=key), c.CounterResult)

    async def counter_incr(self, key: str) -> c.CounterResult:
        return await self._call(c.CounterIncrement(key=key), c.CounterResult)

    async def counter_decr(self, key: str) -> c.CounterResult:
        return await self._call(c.CounterDecrement(key=key), c.CounterResult)

    async def counter_add(self, key: str, amount: int) -> c.CounterResult:
        return await self._call(c.CounterAdd(key=key, amount=amount), c.CounterResult)

    async def counter_sub(self, key: str, amount: int) -> c.CounterResult:
        return await self._call(c.CounterSubtract(key=key, amount=amount), c.CounterResult)

    async def counter_set(self, key: str, value: int) -> c.CounterResult:
        return await self._call(c.CounterSet(key=key, value=value), c.CounterResult)

    async def counter_cas(self, key: str, expected: int, new_value: int) -> c.CounterResult:
        request = c.CounterCompareAndSet(key=key, expected=expected, new_value=new_value)
        return await self._call(request, c.CounterResult)

    async def signed_counter_get(self, key: str) -> c.SignedCounterResult:
        return await self._call(c.SignedCounterGet(key=key), c.SignedCounterResult)

    async def signed_counter_add(self, key: str, amount: int) -> c.SignedCounterResult:
        return await self._call(c.SignedCounterAdd(key=key, amount=amount), c.SignedCounterResult)

    def counter(self, key: str) -> Counter:
        return Counter(self, key)

    def signed_counter(self, key: str) -> SignedCounter:
        return SignedCounter(self, key)

    # ------------------------------------------------------------------------------- sequence --
    async def sequence_next(self, key: str) -> c.SequenceResult:
        return await self._call(c.SequenceNext(key=key), c.SequenceResult)

    async def sequence_reserve(self, key: str, count: int) -> c.SequenceResult:
        return await self._call(c.SequenceReserve(key=key, count=count), c.SequenceResult)

    async def sequence_current(self, key: str) -> c.SequenceResult:
        return await self._call(c.SequenceCurrent(key=key), c.SequenceResult)

    def sequence(self, key: str) -> Sequence:
        return Sequence(self, key)


class Counter:
    """An unsigned counter (saturating at 0): every method returns the value after the operation."""

    __slots__ = ("_client", "key")

    def __init__(self, client: CoordinationMixin, key: str) -> None:
        self._client, self.key = client, key

    async def get(self) -> int:
        return _value(await self._client.counter_get(self.key))

    async def incr(self) -> int:
        return _value(await self._client.counter_incr(self.key))

    async def decr(self) -> int:
        return _value(await self._client.counter_decr(self.key))

    async def add(self, amount: int) -> int:
        return _value(await self._client.counter_add(self.key, amount))

    async def sub(self, amount: int) -> int:
        return _value(await self._client.counter_sub(self.key, amount))

    async def set(self, value: int) -> int:
        return _value(await self._client.counter_set(self.key, value))

    async def compare_and_set(self, expected: int, new_value: int) -> bool:
        """True if the counter was `expected` and is now `new_value`; False if it held another value."""
        res = await self._client.counter_cas(self.key, expected, new_value)
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
        return _value(await self._client.signed_counter_get(self.key))

    async def add(self, amount: int) -> int:
        return _value(await self._client.signed_counter_add(self.key, amount))


class Sequence:
    """Unique increasing IDs: `next()` gives 1, 2, 3, ...; `reserve(n)` the first of n consecutive IDs."""

    __slots__ = ("_client", "key")

    def __init__(self, client: CoordinationMixin, key: str) -> None:
        self._client, self.key = client, key

    async def next(self) -> int:
        return _value(await self._client.sequence_next(self.key))

    async def reserve(self, count: int) -> int:
        return _value(await self._client.sequence_reserve(self.key, count))

    async def current(self) -> int:
        """The ID the next `next()` would return (nothing is reserved)."""
        return _value(await self._client.sequence_current(self.key))


__all__ = ["CoordinationError", "CoordinationMixin", "Counter", "Sequence", "SignedCounter"]
