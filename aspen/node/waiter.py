"""Waiting for the applied state to change, without polling and without proposing.

A blocking request (lock, lock-set and semaphore acquire) that its layer says cannot succeed now
parks here on the storage keys that block it. The KV machine reports every applied put and delete
(`KvStateMachine.on_change`, installed only while something waits); a change of a parked key, or
a snapshot replacing the whole state, wakes the waits on it, which then look at the state again.
A wait also ends at its deadline, which the caller sets to the earlier of its own deadline and the
moment time alone unblocks it (a holder's expiry).

Invariants: nothing here proposes or reads the log; a wake-up is a hint to look again, never a
decision (only an applied command decides); every wait ends by its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aspen.kv import KvStateMachine


class Waiter:
    def __init__(self, kv: KvStateMachine) -> None:
        self._kv = kv
        self._by_key: dict[str, set[asyncio.Event]] = {}
        #: Waits on every key under a prefix (a queue's items); few, so a list is scanned per change.
        self._by_prefix: list[tuple[str, asyncio.Event]] = []
        self._parked = 0

    @property
    def parked(self) -> int:
        """How many waits are parked now."""
        return self._parked

    async def wait(self, keys: Iterable[str], until: float, prefixes: Iterable[str] = ()) -> bool:
        """Park until one of `keys`, or a key under one of `prefixes`, changes (True) or the
        monotonic time `until` passes (False)."""
        keys = tuple(keys)
        event = asyncio.Event()
        for key in keys:
            self._by_key.setdefault(key, set()).add(event)
        watched = [(prefix, event) for prefix in prefixes]
        self._by_prefix.extend(watched)
        self._parked += 1
        self._kv.on_change = self._changed
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + until - time.monotonic()):
                await event.wait()
            return True
        except TimeoutError:
            return event.is_set()
        finally:
            for key in keys:
                events = self._by_key.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._by_key[key]
            for entry in watched:
                self._by_prefix.remove(entry)
            self._parked -= 1
            if self._parked == 0:
                self._kv.on_change = None

    def _changed(self, key: str | None) -> None:
        if key is None:  # a snapshot replaced everything
            for events in self._by_key.values():
                for event in events:
                    event.set()
            for _, event in self._by_prefix:
                event.set()
            return
        for event in self._by_key.get(key, ()):
            event.set()
        for prefix, event in self._by_prefix:
            if key.startswith(prefix):
                event.set()


__all__ = ["Waiter"]
