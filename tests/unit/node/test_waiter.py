"""The Waiter wakes a parked wait when the applied state changes one of its keys (a put, a delete,
a lease revocation, a snapshot replacing everything), ends it at its deadline otherwise, and
costs the apply path nothing while nothing waits (the machine's hook is unset)."""

from __future__ import annotations

import asyncio
import time

from aspen.kv import Delete, KvStateMachine, Write
from aspen.node.waiter import Waiter


async def _parked_then(
    kv: KvStateMachine, waiter: Waiter, keys: list[str], change: object, within: float
) -> bool:
    wait = asyncio.create_task(waiter.wait(keys, time.monotonic() + within))
    await asyncio.sleep(0)  # let it park
    assert waiter.parked == 1 and kv.on_change is not None
    kv.apply(kv.applied_index + 1, change)  # type: ignore[call-overload]
    woke = await wait
    assert waiter.parked == 0 and kv.on_change is None
    return woke


def test_a_put_of_a_parked_key_wakes_the_wait() -> None:
    kv = KvStateMachine()
    waiter = Waiter(kv)
    assert kv.on_change is None
    assert asyncio.run(_parked_then(kv, waiter, ["a", "b"], Write("b", b"1"), within=30)) is True


def test_a_delete_wakes_it_too() -> None:
    kv = KvStateMachine()
    kv.apply(1, Write("a", b"1"))
    assert asyncio.run(_parked_then(kv, Waiter(kv), ["a"], Delete("a"), within=30)) is True


def test_other_keys_do_not_wake_it_and_the_deadline_ends_it() -> None:
    kv = KvStateMachine()
    started = time.monotonic()
    assert asyncio.run(_parked_then(kv, Waiter(kv), ["a"], Write("ab", b"1"), within=0.05)) is False
    assert time.monotonic() - started >= 0.05


def test_a_change_under_a_parked_prefix_wakes_it() -> None:
    kv = KvStateMachine()
    waiter = Waiter(kv)

    async def go() -> tuple[bool, bool]:
        wait = asyncio.create_task(waiter.wait([], time.monotonic() + 30, prefixes=["q:"]))
        await asyncio.sleep(0)
        kv.apply(1, Write("r:1", b"x"))  # another prefix: still parked
        await asyncio.sleep(0)
        parked = not wait.done()
        kv.apply(2, Write("q:item:1", b"x"))
        return parked, await wait

    assert asyncio.run(go()) == (True, True)
    assert kv.on_change is None


def test_a_snapshot_wakes_every_wait() -> None:
    kv = KvStateMachine()
    kv.apply(1, Write("x", b"1"))
    snapshot = kv.snapshot()
    waiter = Waiter(kv)

    async def go() -> list[bool]:
        waits = [asyncio.create_task(waiter.wait([k], time.monotonic() + 30)) for k in ("a", "b")]
        await asyncio.sleep(0)
        kv.restore(snapshot)
        return list(await asyncio.gather(*waits))

    assert asyncio.run(go()) == [True, True]
    assert kv.on_change is None
