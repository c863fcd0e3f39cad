"""Coordination primitives as layers over the KV state machine (see docs/layers.md).

Each module holds one primitive: its operation types, its result type, its pure `apply` over a
`KvTxn`, its queries over a `KvReader`, and its `LAYER`. `APPLIERS` is the registry the node injects
into `KvStateMachine`; a layer's name in it is persistent (it is written into the Raft log).

Like `aspen.kv`, this package is pure: no asyncio, no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aspen.kv.layer import LayerApplier
from aspen.layers import (
    barrier,
    blobmeta,
    counter,
    lock,
    queue,
    ratelimit,
    rwlock,
    semaphore,
    sequence,
    service,
)
from aspen.layers.framework import Layer

#: Every layer, by its persistent name. Add a new primitive with one line here.
LAYERS: Final[tuple[Layer[Any, Any], ...]] = (
    counter.LAYER,
    sequence.LAYER,
    lock.LAYER,
    rwlock.LAYER,
    ratelimit.LAYER,
    semaphore.LAYER,
    queue.LAYER,
    barrier.LAYER,
    service.LAYER,
    blobmeta.LAYER,
)

APPLIERS: Final[Mapping[str, LayerApplier]] = {layer.name: layer for layer in LAYERS}
assert len(APPLIERS) == len(LAYERS), "two layers share a name"

__all__ = [
    "APPLIERS",
    "LAYERS",
    "Layer",
    "barrier",
    "blobmeta",
    "counter",
    "lock",
    "queue",
    "ratelimit",
    "rwlock",
    "semaphore",
    "sequence",
    "service",
]
