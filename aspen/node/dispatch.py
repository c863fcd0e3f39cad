"""The node's dispatch of declared operations (aspen.api.operation): what a request that names a
layer does is derived from its declaration, so a new primitive needs no handler here.

- WRITE: the request's fields (plus the declaration's `fixed` arguments) become the layer op of the
  same field names (or go to the layer's builder of that name), which the `Proposer` checks,
  stamps with the leader's clock and proposes. Lists and nested models become tuples, maps their
  sorted pairs; an op field marked `drawn()` is drawn here, on the leader, never inside apply.
- READ: after a read barrier (none when the request asks for `stale`), the layer's query of that
  name runs over the applied state with the node's clock.
- BLOCKING: the op is proposed only when the layer's `Wait.blocked` check of the applied state
  says an attempt may succeed; otherwise the handler parks in the `Waiter` on the keys that block
  it (and until time alone unblocks it), so a waiting request adds no log entries. At the
  request's `timeout_ms` (capped at `MAX_WAIT_PER_REQUEST_MS`: the client re-issues longer waits)
  it answers the layer's timed-out result.
- Either way the layer's result becomes the declared result model, field by field.

Forwarding follows from the kind too: `NodeService` relays every WRITE and BLOCKING request to the
leader, so a write handler here always runs on the leader.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from aspen.api.errors import InternalError
from aspen.api.operation import OPERATIONS, Kind, OpSpec
from aspen.api.wire import FAILED, MAX_WAIT_PER_REQUEST_MS, OK, REJECTED, TIMED_OUT, Status, WireModel
from aspen.layers.framework import DRAWN, Blocked, Layer, Wait
from aspen.node.proposer import Proposer

Handler = Callable[[Any], Awaitable[Any]]


def _alternatives(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _model(hint: Any) -> type[BaseModel] | None:
    """The wire model `hint` names (through `| None`), or None."""
    return next((a for a in _alternatives(hint) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _items(hint: Any) -> Any:
    """The item type of the list `hint` names (through `| None`), or Any."""
    return next((typing.get_args(a)[0] for a in _alternatives(hint) if typing.get_origin(a) is list), Any)


def _plain(value: Any, hint: Any = Any) -> Any:
    """A layer value in the wire shape `hint` asks for: dataclasses as maps (of the nested model's
    fields, when `hint` names one: it validates from such a map), tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        model = _model(hint)
        fields = model.model_fields if model else {f.name: None for f in dataclasses.fields(value)}
        return {
            n: _plain(getattr(value, n), f.annotation if f else Any)
            for n, f in fields.items()
            if hasattr(value, n)
        }
    if isinstance(value, tuple):
        return [_plain(v, _items(hint)) for v in value]
    if isinstance(value, Mapping):  # a layer's read-only map (a wire `dict[str, str]`)
        return dict(value)
    return value


def wire_result(spec: OpSpec, result: object, status: Status | None = None) -> WireModel:
    """The layer's result as the declared result model: every model field the result has, and its
    `status` (default: ok or failed, by `is_success`)."""
    fields = {
        n: f
        for n, f in spec.result.model_fields.items()
        if n != "type" and n not in spec.omit and hasattr(result, n)
    }
    values = {n: _plain(getattr(result, n), f.annotation) for n, f in fields.items()}
    if "status" in spec.result.model_fields:
        values["status"] = status or (OK if getattr(result, "is_success", True) else FAILED)
    return spec.result(**values)


def _rejected(spec: OpSpec, layer: Layer[Any, Any], error: str) -> WireModel:
    """Invalid input, refused before anything is proposed."""
    return wire_result(spec, layer.rejected(error), REJECTED)


def _op_value(value: Any) -> Any:
    """A request value as layer ops hold it: lists and nested models as tuples (positional), maps
    as their (key, value) pairs sorted by key (the same request is the same log entry everywhere)."""
    if isinstance(value, BaseModel):
        return tuple(_op_value(getattr(value, n)) for n in type(value).model_fields)
    if isinstance(value, list):
        return tuple(_op_value(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _op_value(v)) for k, v in value.items()))
    return value


def _request_args(spec: OpSpec, request: WireModel) -> dict[str, Any]:
    args = {n: getattr(request, n) for n in type(request).model_fields if n != "type"}
    return {**args, **spec.fixed}


def _builder(spec: OpSpec, layer: Layer[Any, Any]) -> Callable[[dict[str, Any]], Any]:
    """The layer op of the request's arguments: the layer's builder of that name, or its op type by
    field name (the rest, e.g. a wait's `timeout_ms`, is not part of the op), whose `drawn()`
    fields are drawn here. Lists and nested models arrive as tuples, as layer ops hold them."""
    built = layer.builders.get(spec.layer_op)
    if built is not None:
        return lambda args: built(**{n: _op_value(v) for n, v in args.items()})
    op_type = next((t for t in layer.ops if t.__name__ == spec.layer_op), None)
    if op_type is None:
        raise TypeError(f"{spec.name}: layer {layer.name!r} has no operation {spec.layer_op!r}")
    fields = [f.name for f in dataclasses.fields(op_type)]
    drawn = [f.name for f in dataclasses.fields(op_type) if f.metadata.get(DRAWN)]

    def build(args: dict[str, Any]) -> Any:
        values = {n: _op_value(v) for n, v in args.items()} | {f: secrets.randbits(63) for f in drawn}
        return op_type(**{f: values[f] for f in fields})

    return build


def _write_handler(proposer: Proposer, spec: OpSpec, layer: Layer[Any, Any]) -> Handler:
    build = _builder(spec, layer)

    async def handle(request: WireModel) -> WireModel:
        op = build(_request_args(spec, request))
        error = op.check()
        if error is not None:
            return _rejected(spec, layer, error)
        return wire_result(spec, await proposer.propose_op(layer, op))

    return handle


#: Attempts in a row that fail although the state shows nothing blocking them (another request
#: freed and retook the keys in between, or a failure waiting cannot cure) before the failure is
#: the answer.
_UNBLOCKED_FAILURES = 2


def _blocking_handler(proposer: Proposer, spec: OpSpec, layer: Layer[Any, Any]) -> Handler:
    build = _builder(spec, layer)
    wait: Wait | None = layer.waits.get(spec.layer_op)
    if wait is None:
        raise TypeError(f"{spec.name}: layer {layer.name!r} has no wait for {spec.layer_op!r}")

    async def handle(request: WireModel) -> WireModel:
        args = _request_args(spec, request)
        timeout_ms: int = args[spec.wait_field]
        deadline = time.monotonic() + min(timeout_ms, MAX_WAIT_PER_REQUEST_MS) / 1000

        def attempt() -> Any:
            # An op that records its waiter is told how long it will wait from now.
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            return build({**args, "wait_ms": left_ms}) if wait.announce else build(args)

        op = attempt()
        error = wait.check_timeout(timeout_ms) or op.check()
        if error is not None:
            return _rejected(spec, layer, error)

        def expired() -> bool:
            return time.monotonic() >= deadline

        async def park(blocked: Blocked) -> None:
            until = deadline
            if blocked.ready_at_ms is not None:
                wake = time.monotonic() + max(1, blocked.ready_at_ms - proposer.now_ms()) / 1000
                until = min(until, wake)
            await proposer.waiter.wait(blocked.keys, until, blocked.prefixes)

        failures = 0
        announce = wait.announce
        while True:
            blocked = None if announce else wait.blocked(proposer.view(), proposer.now_ms(), op)
            if blocked is None:
                announce = False
                result = await proposer.propose_op(layer, attempt())
                if wait.settle is not None:
                    # The attempt registered us; the answer comes from the state as it settles.
                    while isinstance(
                        out := wait.settle(proposer.view(), proposer.now_ms(), op, result), Blocked
                    ):
                        if expired():
                            return wire_result(spec, out.timed_out, TIMED_OUT)
                        await park(out)
                    if out is not None:
                        return wire_result(spec, out)
                elif result.is_success:
                    return wire_result(spec, result)
                blocked = wait.blocked(proposer.view(), proposer.now_ms(), op)
                if blocked is None:
                    failures += 1
                    if failures >= _UNBLOCKED_FAILURES:
                        return wire_result(spec, result)
                    continue
            failures = 0
            if expired():
                return wire_result(spec, blocked.timed_out, TIMED_OUT)
            await park(blocked)

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
        build = {Kind.READ: _read_handler, Kind.WRITE: _write_handler, Kind.BLOCKING: _blocking_handler}
        found = self._built[name] = build[spec.kind](self._proposer, spec, layer)
        return found


__all__ = ["Dispatch", "Handler", "wire_result"]
