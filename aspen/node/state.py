"""The replicated state machine of a node: the KV store behind the driver's `Applier` protocol.

Later layers (leases, coordination) add their commands to the same batch codec; the driver only
ever sees opaque entry payloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aspen.kv import KvStateMachine, decode_batch, encode_batch
from aspen.layers import APPLIERS


class NodeStateMachine:
    def __init__(self) -> None:
        # Coordination layers apply inside the KV machine, one log command per operation.
        self.kv = KvStateMachine(layers=APPLIERS)

    def encode_batch(self, commands: Sequence[Any]) -> bytes:
        return encode_batch(commands)

    def apply_batch(self, index: int, data: bytes) -> list[Any]:
        # A committed entry that does not decode is corruption or a bug; raising stops the node
        # (the driver treats it as fatal) rather than letting replicas diverge.
        return [self.kv.apply(index, cmd) for cmd in decode_batch(data)]

    def snapshot(self) -> bytes:
        return self.kv.snapshot()

    def restore(self, data: bytes) -> None:
        self.kv.restore(data)
