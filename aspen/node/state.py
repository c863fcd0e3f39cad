"""The replicated state machine of a node: the KV store behind the driver's `Applier` protocol.

Later layers (leases, coordination) add their commands to the same batch codec; the driver only
ever sees opaque entry payloads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aspen.kv import KvStateMachine, LayerCommand, decode_batch, encode_batch
from aspen.layers import LAYERS
from aspen.layers.framework import Layer
from aspen.raft.errors import ApplyFailed

log = logging.getLogger(__name__)


class NodeStateMachine:
    def __init__(self, layers: Sequence[Layer[Any, Any]] = LAYERS) -> None:
        #: The layers by their persistent name (a build of the node serves exactly these).
        self.layers: dict[str, Layer[Any, Any]] = {layer.name: layer for layer in layers}
        # Coordination layers apply inside the KV machine, one log command per operation.
        self.kv = KvStateMachine(layers=self.layers)

    def encode_batch(self, commands: Sequence[Any]) -> bytes:
        return encode_batch(commands)

    def apply_batch(self, index: int, data: bytes) -> list[Any]:
        # A committed entry that does not decode is corruption or a bug; the driver logs it with its
        # index and skips it (decoding is deterministic, so every replica skips it alike).
        return [self._apply_one(index, cmd) for cmd in decode_batch(data)]

    def _apply_one(self, index: int, cmd: Any) -> Any:
        try:
            return self.kv.apply(index, cmd)
        except Exception as err:
            # Last resort, per command: the machine is total by design (see aspen.kv.machine), so
            # this is a bug. Failing only this command keeps the node serving and answers the
            # proposer with INTERNAL_ERROR instead of stopping every replica on this entry.
            what = f"{cmd.layer} {cmd.op}" if isinstance(cmd, LayerCommand) else type(cmd).__name__
            log.exception("command could not be applied; skipped", extra={"index": index, "command": what})
            return ApplyFailed(f"{what} at log index {index} could not be applied ({type(err).__name__})")

    def snapshot(self) -> bytes:
        return self.kv.snapshot()

    def restore(self, data: bytes) -> None:
        self.kv.restore(data)
