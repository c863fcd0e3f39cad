"""The node's dispatch of declared operations (aspen.api.operation): what a request that names a
layer does is derived from its declaration, so a new primitive needs no handler here.

- WRITE: the request's fields (plus the declaration's `fixed` arguments) become the layer op of the
  same field names, which the `Proposer` checks, stamps with the leader's clock and proposes.
- READ: after a read barrier (none when the request asks for `stale`), the layer's query of that
  name runs over the applied state with the node's clock.
- Either way the layer's result becomes the declared result model, field by field.

Forwarding follows from the kind too: `NodeService` relays every WRITE and BLOCKING request to the
leader, so a write handler here always runs on the leader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aspen.api.errors import InternalError
from aspen.api.operation import OPERATIONS, OpSpec
from aspen.api.wire import WireModel
from aspen.layers.framework import Layer
from aspen.node.proposer import Proposer

Handler = Callable[[Any], Awaitable[Any]]


def _plain(value: Any) -> Any:
    """A layer value in wire shape: dataclasses as maps (a nested model validates from one),
    tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def wire_result(spec: OpSpec, result: object) -> WireModel:
    """The layer's result as the declared result model: every model field the result has."""
    names = (n for n in spec.result.model_fields if n != "type")
    return spec.result(**{n: _plain(getattr(result, n)) for n in names if hasattr(result, n)})


def _request_args(spec: OpSpec, request: WireModel) -> dict[str, Any]:
    args = {n: getattr(request, n) for n in type(request).model_fields if n != "type"}
    return {**args, **spec.fixed}


def _write_handler(proposer: Proposer, spec: OpSpec, layer: Layer[Any, Any]) -> Handler:
    op_type = next((t for t in layer.ops if t.__name__ == spec.layer_op), None)
    if op_type is None:
        raise TypeError(f"{spec.name}: layer {layer.name!r} has no operation {spec.layer_op!r}")
    fields = [f.name for f in dataclasses.fields(op_type)]

    async def handle(request: WireModel) -> WireModel:
        args = _request_args(spec, request)
        # Layer ops hold tuples, never lists (they are encoded positionally into the log).
        op = op_type(**{f: tuple(args[f]) if isinstance(args[f], list) else args[f] for f in fields})
        return wire_result(spec, await proposer.propose_op(layer, op))

    return handle


def _read_handler(proposer: Proposer, spec: OpSpec, layer: Layer[Any, Any]) -> Handler:
    query = layer.queries.get(spec.layer_op)
    if query is None:
        raise TypeError(f"{spec.name}: layer {layer.name!r} has no query {spec.layer_op!r}")

    async def handle(request: WireModel) -> WireModel:
        await proposer.barrier(bool(getattr(request, "stale", False)))
        args = _request_args(spec, request)
        args.pop("stale", None)
        return wire_result(spec, query(proposer.view(), proposer.now_ms(), **args))

    return handle


class Dispatch:
    """Handlers for the declared operations implemented by `layers`, built on first use (so an
    operation declared after the node started, as a test does, is served too)."""

    def __init__(self, proposer: Proposer, layers: Mapping[str, Layer[Any, Any]]) -> None:
        self._proposer = proposer
        self._layers = layers
        self._built: dict[str, Handler] = {}

    def handler(self, name: str) -> Handler | None:
        found = self._built.get(name)
        if found is not None:
            return found
        spec = OPERATIONS.get(name)
        if spec is None or spec.layer is None:
            return None
        layer = self._layers.get(spec.layer)
        if layer is None:
            raise InternalError(f"{name}: this node has no layer {spec.layer!r}")
        build = _read_handler if spec.kind.is_read else _write_handler
        found = self._built[name] = build(self._proposer, spec, layer)
        return found


__all__ = ["Dispatch", "Handler", "wire_result"]
