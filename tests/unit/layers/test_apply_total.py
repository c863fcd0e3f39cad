"""`apply` is total (issue 19): whatever bytes sit under a layer's keys, every operation of every
layer applies to a result, never an exception, and two replicas fed the same log end in the same
state.

Everything is generated from `aspen.layers.LAYERS`: each layer's declared key prefixes are where the
adversarial bytes go, and its op types (their field hints) are what runs, so a new layer is covered
by declaring its prefixes. The bytes reach the store through the state machine's own API (a plain
`Write` applied to the machine; the node's edge refuses those for clients, a restored backup or an
older node's log does not).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aspen.kv import MAX_VALUE_SIZE, RESERVED_PREFIXES, KvStateMachine, Write
from aspen.layers import APPLIERS, LAYERS, Layer
from aspen.layers.framework import _field_hints

NOW = 1_000_000
#: Names the generated ops use, so they meet the poisoned keys.
NAMES = ("x", "y")
ID = "0" * 19 + "1"
#: Key suffixes under a layer prefix: plain records and the queue's / registry's sub-keys.
SUFFIXES = ("x", "y", "x:x", f"x:item:{ID}", f"x:pending:{ID}", f"x:dlq:{ID}", "x:dedup:d")


def _keys(layer: Layer[Any, Any]) -> list[str]:
    # A prefix that ends a segment holds records below it; any other is one exact key (a counter).
    return [p + s for p in layer.prefixes for s in SUFFIXES] if layer.prefixes else []


POISON_KEYS = sorted(
    {k for layer in LAYERS for k in _keys(layer)}
    | {p for layer in LAYERS for p in layer.prefixes if not p.endswith(":")}
)

# ------------------------------------------------------------------------------------ valid state --
#: Field names the layers' records use: wrong-typed values under the right names get past the
#: "is it an object" check and must be caught by each layer's own shape checks.
FIELDS = [
    "holders",
    "holder_id",
    "permits",
    "acquired_at_ms",
    "deadline_ms",
    "capacity_permits",
    "required",
    "participants",
    "phase",
    "round",
    "created_at_ms",
    "tokens",
    "last_update_ms",
    "fencing_token",
    "ttl_ms",
    "writer",
    "readers",
    "pending_writers",
    "id",
    "payload",
    "enqueued_at_ms",
    "expires_at_ms",
    "attempts",
    "group",
    "dedup",
    "receipt",
    "consumer",
    "item_id",
    "next_id",
    "visibility_timeout_ms",
    "default_ttl_ms",
    "max_delivery_attempts",
    "total_enqueued",
    "total_acked",
    "total_dlq",
    "service_name",
    "instance_id",
    "address",
    "version",
    "tags",
    "weight",
    "health",
    "metadata",
    "registered_at_ms",
    "last_heartbeat_ms",
    "reason",
    "moved_at_ms",
    "last_error",
    "hash",
    "size",
    "nodes",
    "policy",
    "replication_factor",
    "min_replicas",
    "updated_at_micros",
]


def _hint_strategy(hint: Any, name: str) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of([_hint_strategy(h, name) for h in typing.get_args(hint)])
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_hint_strategy(args[0], name), max_size=3).map(tuple)
        return st.tuples(*(_hint_strategy(h, name) for h in args))
    if hint is type(None) or hint is None:
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        small = st.sampled_from([1, 2, 3, 10, 1000, 30_000])
        return small | small | small | st.sampled_from([0, 2**64 - 1]) | st.integers(-(2**70), 2**70)
    if hint is float:
        return st.sampled_from([0.0, 1.0, 10.0])
    if hint is bytes:
        return st.binary(max_size=8)
    if hint is str:
        if "receipt" in name:
            return st.sampled_from([f"{ID}:5:n", "1:2:3", "x"])
        # Mostly the names the poisoned keys use, sometimes anything.
        return st.sampled_from(NAMES) | st.sampled_from(NAMES) | st.sampled_from(NAMES) | st.text(max_size=6)
    raise AssertionError(f"no strategy for {hint!r}: extend _hint_strategy for the new field type")


def _op_strategy(op_type: type) -> st.SearchStrategy[Any]:
    fields = _field_hints(op_type)
    return st.tuples(*(_hint_strategy(h, n) for n, h in fields)).map(lambda args: op_type(*args))


def _ops_of(layer: Layer[Any, Any]) -> st.SearchStrategy[tuple[Layer[Any, Any], Any]]:
    return st.one_of([_op_strategy(t) for t in layer.ops]).map(lambda op: (layer, op))


LAYER_OPS = st.one_of([_ops_of(layer) for layer in LAYERS])


def _seed_valid_state() -> list[Any]:
    """Commands that leave real records under every layer (so mutated real records can be made)."""
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

    ops: list[tuple[Layer[Any, Any], Any]] = [
        (counter.LAYER, counter.CounterAdd("x", 1)),
        (sequence.LAYER, sequence.SequenceReserve("x", 2)),
        (lock.LAYER, lock.LockTryAcquire("x", "h", 30_000)),
        (rwlock.LAYER, rwlock.RwLockTryRead("x", "h", 30_000)),
        (ratelimit.LAYER, ratelimit.RateLimiterTryAcquire("x", 1, 10, 1.0)),
        (semaphore.LAYER, semaphore.SemaphoreTryAcquire("x", "h", 1, 3, 30_000)),
        (queue.LAYER, queue.QueueCreate("x", 10_000, 0, 3)),
        (queue.LAYER, queue.QueueEnqueue("x", ((b"a", 0, None, "d"), (b"b", 0, "g", None)))),
        (queue.LAYER, queue.QueueDequeue("x", "c", 1, 10_000, 1)),
        (barrier.LAYER, barrier.BarrierEnter("x", "p", 2)),
        (service.LAYER, service.ServiceRegister("x", "x", "h:1", "1", ("t",), 1, 30_000, (("k", "v"),))),
        (blobmeta.LAYER, blobmeta.BlobHolderAdd("x", 5, 1, 3)),
    ]
    return [layer.command(op, NOW) for layer, op in ops]


SEED = _seed_valid_state()


def _seeded() -> KvStateMachine:
    machine = KvStateMachine(layers=APPLIERS)
    for i, cmd in enumerate(SEED, start=1):
        res = machine.apply(i, cmd)
        assert getattr(res, "is_success", True), (cmd, res)
    return machine


REAL_RECORDS: list[tuple[str, dict[str, Any]]] = []
for _key, _entry in _seeded().items(""):
    try:
        _doc = json.loads(_entry.value)
    except ValueError:
        continue
    if isinstance(_doc, dict):
        REAL_RECORDS.append((_key, _doc))
assert len(REAL_RECORDS) >= 8, REAL_RECORDS

# ----------------------------------------------------------------------------- adversarial bytes --
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    max_leaves=8,
)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@st.composite
def _mutated_record(draw: st.DrawFn) -> bytes:
    """A real record with one field (or one field of a nested object) replaced by any JSON value."""
    _, doc = draw(st.sampled_from(REAL_RECORDS))
    doc = json.loads(_dumps(doc))
    field = draw(st.sampled_from(sorted(doc)))
    target = doc[field]
    if isinstance(target, list) and target and isinstance(target[0], dict) and draw(st.booleans()):
        inner = target[0]
        inner[draw(st.sampled_from(sorted(inner)))] = draw(JSON_VALUES)
    else:
        doc[field] = draw(JSON_VALUES)
    return _dumps(doc)


DEEP_OPENERS = (b"[", b"{", b'{"a":', b'{"holders":[', b"[{", b'["')
# Depths around the bound, past the recursion limit (≈ 1000, raised by Hypothesis) and the issue's.
DEEP_JSON = st.tuples(
    st.sampled_from(DEEP_OPENERS), st.sampled_from([65, 1500, 20_000, 200_000]) | st.integers(60, 5000)
).map(lambda t: (t[0] * t[1])[:MAX_VALUE_SIZE])
POISON = st.one_of(
    # Weighted: deep JSON is what stopped whole clusters (issue 19, item 1).
    DEEP_JSON,
    DEEP_JSON,
    DEEP_JSON,
    st.integers(4300, 6000).map(lambda n: b"9" * n),
    st.integers(4300, 6000).map(lambda n: b'{"holders":1' + b"0" * n + b',"capacity_permits":1}'),
    st.sampled_from(
        [
            b"\xff\xfe",
            b'{"a":"\xff"}',
            b'{"tokens":NaN,"last_update_ms":1}',
            b'{"tokens":1e400,"last_update_ms":1}',
            b'{"tokens":' + b"1" * 400 + b',"last_update_ms":1}',
            b"-" + b"9" * 25,
            b"",
            b"null",
            b"[]",
            b'"x"',
            b'{"holders": 5}',
        ]
    ),
    st.binary(max_size=40),
    JSON_VALUES.map(_dumps),
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6).map(_dumps),
    _mutated_record(),
    st.sampled_from(REAL_RECORDS).map(lambda kv: _dumps(kv[1])),
)


def _run(machine: KvStateMachine, commands: list[Any]) -> list[Any]:
    base = len(SEED)
    results = []
    for i, cmd in enumerate(commands, start=base + 1):
        results.append(machine.apply(i, cmd))  # must not raise
    return results


# ------------------------------------------------------------------------------------------ tests --
def test_every_layer_declares_its_prefixes_inside_a_reserved_prefix() -> None:
    for layer in LAYERS:
        assert layer.prefixes, f"layer {layer.name!r} declares no key prefixes"
        for prefix in layer.prefixes:
            assert prefix.startswith(RESERVED_PREFIXES), (layer.name, prefix)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), layer=st.sampled_from(LAYERS))
def test_apply_never_raises_and_replicas_agree(data: st.DataObject, layer: Layer[Any, Any]) -> None:
    # Poison one layer's keys and run mostly that layer's ops, so most ops meet the poison.
    exact = [p for p in layer.prefixes if not p.endswith(":")]
    # Mostly the layer's main records (the ones every op reads), sometimes any of its sub-keys.
    main = st.sampled_from([p + "x" for p in layer.prefixes if p.endswith(":")] + exact)
    keys = main | main | st.sampled_from(_keys(layer) + exact)
    poison = data.draw(st.lists(st.tuples(keys, POISON), min_size=1, max_size=6), label="poison")
    ops = data.draw(st.lists(_ops_of(layer) | LAYER_OPS, min_size=1, max_size=6), label="ops")
    commands: list[Any] = [Write(k, v) for k, v in poison]
    commands += [op_layer.command(op, NOW + 10 * i) for i, (op_layer, op) in enumerate(ops)]
    # Then every operation of the poisoned layer, with plain valid arguments, on every name.
    commands += [layer.command(_sample_op(t, name), NOW + 99) for t in layer.ops for name in NAMES]
    a, b = _seeded(), _seeded()
    results_a, results_b = _run(a, commands), _run(b, commands)
    assert results_a == results_b
    assert a.state_hash() == b.state_hash()
    for res in results_a:
        # The framework's last-resort guard answers "failed on the stored data": reaching it means a
        # layer's own checks missed a shape, which is a bug to fix in that layer.
        assert "failed on the stored data" not in str(getattr(res, "error", "")), res


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("opener", DEEP_OPENERS)
def test_the_issue_sequence_deep_json_under_every_layer_key(layer: Layer[Any, Any], opener: bytes) -> None:
    """Item 1: 200,000 nested brackets at a layer's key, then every op of that layer."""
    deep = opener * (200_000 // len(opener))
    machine = _seeded()
    commands: list[Any] = [Write(k, deep) for k in _keys(layer) or layer.prefixes]
    for op_type in layer.ops:
        commands += [layer.command(_sample_op(op_type, name), NOW) for name in NAMES]
    for res in _run(machine, commands)[len(commands) - len(layer.ops) * len(NAMES) :]:
        assert "failed on the stored data" not in str(getattr(res, "error", "")), res


def _sample(hint: Any, field: str, name: str) -> Any:
    """A plain, mostly valid value for a field (names are `name`, numbers small and in range)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _sample(next(h for h in typing.get_args(hint) if h is not type(None)), field, name)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], field, name),)
        return tuple(_sample(h, field, name) for h in args)
    if hint is str:
        return f"{ID}:5:n" if "receipt" in field else name
    return {int: 1000, bool: False, bytes: b"a", float: 1.0}[hint]


def _sample_op(op_type: type, name: str) -> Any:
    return op_type(*(_sample(h, n, name) for n, h in _field_hints(op_type)))


# ------------------------------------------------------------------------------ last-resort guards --
def _boom(txn: Any, op: Any, now_ms: int) -> Any:
    txn.put("__coord:test:x", b"partial")
    raise RecursionError("bug")


def test_a_layer_that_raises_is_rejected_and_writes_nothing() -> None:
    layer = LAYERS[0]
    broken = Layer(layer.name, layer.ops, _boom, layer.rejected, layer.prefixes)
    machine = KvStateMachine(layers={layer.name: broken})
    res = machine.apply(1, layer.command(_sample_op(layer.ops[0], "x"), NOW))
    assert res.is_success is False and "failed on the stored data (RecursionError)" in res.error
    assert len(machine) == 0


def test_a_non_framework_applier_that_raises_is_rejected() -> None:
    from aspen.kv import LayerCommand, LayerRejected

    def applier(txn: Any, cmd: Any) -> Any:
        txn.put("k", b"v")
        raise ValueError("bug")

    machine = KvStateMachine(layers={"raw": applier})
    res = machine.apply(1, LayerCommand("raw", "Op", NOW, ()))
    assert res == LayerRejected(error="raw 'Op' failed (ValueError)")
    assert len(machine) == 0 and machine.applied_index == 1


def test_the_node_fails_only_the_raising_command() -> None:
    from aspen.kv import encode_batch
    from aspen.node.state import NodeStateMachine
    from aspen.raft.errors import ApplyFailed

    class Exploding(KvStateMachine):
        __slots__ = ()

        def apply(self, index: int, command: Any) -> Any:
            if isinstance(command, Write) and command.key == "bad":
                raise MemoryError("simulated")
            return super().apply(index, command)

    node = NodeStateMachine()
    node.kv = Exploding(layers=APPLIERS)
    results = node.apply_batch(7, encode_batch([Write("a", b"1"), Write("bad", b"2"), Write("b", b"3")]))
    assert results[0].is_success and results[2].is_success
    assert isinstance(results[1], ApplyFailed) and "index 7" in str(results[1])
    assert "a" in node.kv and "b" in node.kv and "bad" not in node.kv
