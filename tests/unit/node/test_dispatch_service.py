"""The service registry's declared operations through the node's dispatch, over a local state
machine standing in for Raft: request fields become the layer op (a metadata map as its sorted
pairs, so the log entry does not depend on the map's order), layer results become the declared
result models (instances with their metadata map), and reads answer from the queries."""

from __future__ import annotations

import asyncio
from typing import Any

from aspen.api import messages  # noqa: F401  (importing the schema declares every operation)
from aspen.api import registry as w
from aspen.api.wire import WireModel
from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, LAYERS
from aspen.layers.framework import Layer, Op
from aspen.node.dispatch import Dispatch

NOW_MS = 1_000


class LocalProposer:
    """`Proposer`'s interface over an in-memory machine: each op goes through the log codec."""

    def __init__(self) -> None:
        self.kv = KvStateMachine(layers=APPLIERS)
        self.logged: list[LayerCommand] = []

    async def propose_op(self, layer: Layer[Any, Any], op: Op) -> Any:
        error = op.check()
        if error is not None:
            return layer.rejected(error)
        (cmd,) = decode_batch(encode_batch([layer.command(op, NOW_MS)]))
        assert isinstance(cmd, LayerCommand)
        self.logged.append(cmd)
        return self.kv.apply(len(self.logged), cmd)

    async def barrier(self, stale: bool = False) -> None:
        pass

    def view(self) -> KvView:
        return KvView(self.kv)

    def now_ms(self) -> int:
        return NOW_MS


def _call(dispatch: Dispatch, request: WireModel) -> Any:
    handler = dispatch.handler(request.type)  # type: ignore[attr-defined]
    assert handler is not None

    async def go() -> Any:
        return await handler(request)

    return asyncio.run(go())


def test_register_get_discover_list_through_dispatch() -> None:
    proposer = LocalProposer()
    dispatch = Dispatch(proposer, {layer.name: layer for layer in LAYERS})  # type: ignore[arg-type]
    reg = w.ServiceRegister(
        service_name="api",
        instance_id="a1",
        address="10.0.0.1:80",
        tags=["eu", "gpu"],
        custom_metadata={"zone": "eu-1", "az": "b"},
        ttl_ms=5_000,
    )
    res = _call(dispatch, reg)
    assert res == w.ServiceRegisterResult(
        status="ok", is_success=True, fencing_token=1, deadline_ms=NOW_MS + 5_000
    )
    (cmd,) = proposer.logged
    assert (cmd.layer, cmd.op) == ("service", "ServiceRegister")
    assert cmd.args == (
        "api",
        "a1",
        "10.0.0.1:80",
        "1.0.0",
        ("eu", "gpu"),
        100,
        5_000,
        (("az", "b"), ("zone", "eu-1")),
    )
    # The same request with its map in another order is the same log entry.
    _call(dispatch, reg.model_copy(update={"custom_metadata": {"az": "b", "zone": "eu-1"}}))
    assert proposer.logged[1].args == cmd.args

    got = _call(dispatch, w.ServiceGetInstance(service_name="api", instance_id="a1"))
    assert got.is_success and got.was_found
    assert got.instance.custom_metadata == {"az": "b", "zone": "eu-1"}
    assert (got.instance.tags, got.instance.fencing_token, got.instance.health) == (
        ["eu", "gpu"],
        2,
        "healthy",
    )
    missing = _call(dispatch, w.ServiceGetInstance(service_name="api", instance_id="nope"))
    assert missing == w.ServiceGetInstanceResult(status="ok", is_success=True, was_found=False, instance=None)

    found = _call(dispatch, w.ServiceDiscover(service_name="api", tags=["gpu"]))
    assert [i.instance_id for i in found.instances] == ["a1"]
    assert _call(dispatch, w.ServiceDiscover(service_name="api", tags=["us"])).instances == []
    assert _call(dispatch, w.ServiceList()).services == ["api"]


def test_updates_map_onto_their_layer_ops() -> None:
    proposer = LocalProposer()
    dispatch = Dispatch(proposer, {layer.name: layer for layer in LAYERS})  # type: ignore[arg-type]
    token = _call(dispatch, w.ServiceRegister(service_name="s", instance_id="i", address="h:1")).fencing_token
    ids = {"service_name": "s", "instance_id": "i", "fencing_token": token}
    health = _call(dispatch, w.ServiceUpdateHealth(**ids, status="unhealthy"))
    assert health == w.ServiceOpResult(status="ok", is_success=True, deadline_ms=NOW_MS + 30_000)
    bogus = _call(dispatch, w.ServiceUpdateHealth(**ids, status="sick"))
    assert (bogus.status, bogus.is_success) == ("rejected", False) and "health must be one of" in bogus.error
    update = _call(dispatch, w.ServiceUpdateMetadata(**ids, tags=["x"]))
    assert update.is_success
    assert [c.op for c in proposer.logged] == ["ServiceRegister", "ServiceSetHealth", "ServiceUpdate"]
    assert proposer.logged[-1].args == ("s", "i", token, None, ("x",), None)
    instance = _call(dispatch, w.ServiceGetInstance(service_name="s", instance_id="i")).instance
    assert (instance.health, instance.tags, instance.version) == ("unhealthy", ["x"], "1.0.0")
    gone = _call(dispatch, w.ServiceDeregister(**ids))
    assert gone == w.ServiceOpResult(status="ok", is_success=True, was_registered=True)
