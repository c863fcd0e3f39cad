"""The seam between the KV state machine and the coordination layers (`aspen.layers`).

A coordination operation (counter add, lock acquire, ...) is one `LayerCommand` in the Raft log:
`(layer, op, now_ms, args)`. `KvStateMachine` does not know any layer: it is constructed with a
registry `{layer name: LayerApplier}` and, for a `LayerCommand`, hands the named applier a `KvTxn`
over its sorted map. The applier reads and writes plain KV keys through the transaction; when it
returns, the machine commits the buffered writes at the command's log index, all in one apply step.

Invariants:
- Atomic: writes are buffered in the `KvTxn` and reach the map only after the applier returned a
  result. A rejected operation clears the txn first (the `aspen.layers` framework does it on
  `Rejected`), so it changes nothing.
- Deterministic: `now_ms` is chosen once by the proposer (the leader's clock) and carried in the
  command; appliers never read a clock or a random source. Buffered writes are committed in the
  order they were first made (dict order), so every replica bumps versions identically.
- Layer state is ordinary KV keys, so snapshots, restore and `state_hash` cover it unchanged.
- `aspen.kv` never imports `aspen.layers`: the registry is injected (see `aspen.node.state`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from aspen.kv.entry import KvEntry
from aspen.kv.validation import check_key, check_value


@dataclass(frozen=True, slots=True)
class LayerCommand:
    """One coordination operation, as logged. `args` holds msgpack-able plain values (int, str,
    bytes, bool, None, and tuples of those), positional, as the layer's op type declares them."""

    layer: str
    op: str
    #: Unix ms chosen by the proposer; the only clock a layer ever sees.
    now_ms: int
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class LayerRejected:
    """Result of a `LayerCommand` naming a layer this machine was not built with."""

    error: str


class Rejected(Exception):
    """Raised by a layer (or by `KvTxn.put`) to reject the operation: nothing is written and the
    layer turns the message into its own failure result."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Source(Protocol):
    """What a view needs from the machine (`KvStateMachine` provides it)."""

    def get_entry(self, key: str) -> KvEntry | None: ...

    def items(self, prefix: str = "", after: str | None = None) -> Iterator[tuple[str, KvEntry]]: ...


class KvReader(Protocol):
    """Read access for layer queries (linearizable once the node passed its read barrier)."""

    def get(self, key: str) -> bytes | None: ...

    def scan(
        self, prefix: str, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, bytes]]:
        """(key, value) pairs whose key starts with `prefix` and sorts after `after`, ascending."""
        ...


class KvView:
    """Read-only `KvReader` over the machine's current state."""

    __slots__ = ("_source",)

    def __init__(self, source: _Source) -> None:
        self._source = source

    def get(self, key: str) -> bytes | None:
        entry = self._source.get_entry(key)
        return None if entry is None else entry.value

    def scan(
        self, prefix: str, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if limit is not None and limit <= 0:
            return out
        for key, entry in self._source.items(prefix, after):
            out.append((key, entry.value))
            if limit is not None and len(out) >= limit:
                break
        return out


class KvTxn(KvView):
    """A `KvReader` that also buffers writes; reads see the transaction's own writes."""

    __slots__ = ("_writes",)

    def __init__(self, source: _Source) -> None:
        super().__init__(source)
        #: key -> new value, or None for a delete; insertion order is the commit order.
        self._writes: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return super().get(key)

    def put(self, key: str, value: bytes) -> None:
        """Set `key`; raises `Rejected` if the key or value breaks the KV limits."""
        err = check_key(key) or check_value(value)
        if err is not None:
            raise Rejected(err)
        self._writes[key] = value

    def delete(self, key: str) -> None:
        self._writes[key] = None

    def scan(
        self, prefix: str, *, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if limit is not None and limit <= 0:
            return out
        writes = self._writes
        own = sorted(
            (k, v) for k, v in writes.items() if k.startswith(prefix) and (after is None or k > after)
        )
        # The two streams are disjoint by key (a written key is skipped in the base), so merging on
        # the key alone never compares values.
        base = ((k, e.value) for k, e in self._source.items(prefix, after) if k not in writes)
        merged: Iterator[tuple[str, bytes | None]] = heapq.merge(base, own, key=itemgetter(0))
        for key, value in merged:
            if value is None:
                continue
            out.append((key, value))
            if limit is not None and len(out) >= limit:
                break
        return out

    def clear(self) -> None:
        """Drop every buffered write (the operation was rejected half-way)."""
        self._writes.clear()

    def writes(self) -> list[tuple[str, bytes | None]]:
        """The buffered writes in commit order (None = delete)."""
        return list(self._writes.items())


class LayerApplier(Protocol):
    """Applies one logged `LayerCommand` of its layer; returns the layer's result object. Must be
    deterministic and must not raise except for programming errors (`Rejected` is handled by the
    `aspen.layers` framework before it gets here)."""

    def __call__(self, txn: KvTxn, cmd: LayerCommand) -> Any: ...


__all__ = ["KvReader", "KvTxn", "KvView", "LayerApplier", "LayerCommand", "LayerRejected", "Rejected"]
