"""The layer framework: LayerCommand encoding, strict decoding, atomic application over a KvTxn,
and layer state living in ordinary keys (so snapshots and state hashes cover it)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import (
    KvStateMachine,
    KvTxn,
    LayerCommand,
    LayerRejected,
    Rejected,
    Write,
    decode_batch,
    encode_batch,
)
from aspen.layers import APPLIERS, counter, sequence
from aspen.layers.framework import Layer, decode_op


def machine() -> KvStateMachine:
    return KvStateMachine(layers=APPLIERS)


# ------------------------------------------------------------------------------------------- codec --
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=8,
)


@settings(max_examples=200)
@given(
    layer=st.text(max_size=10),
    op=st.text(max_size=10),
    now_ms=st.integers(0, 2**63 - 1),
    args=st.lists(plain, max_size=5).map(tuple),
)
def test_layer_command_round_trips_exactly(
    layer: str, op: str, now_ms: int, args: tuple[object, ...]
) -> None:
    cmd = LayerCommand(layer, op, now_ms, args)
    assert decode_batch(encode_batch([cmd, Write("k", b"v")])) == [cmd, Write("k", b"v")]


def test_layer_command_with_ill_typed_header_does_not_decode() -> None:
    import msgpack

    for bad in ([32, "counter", "CounterAdd", "5", []], [32, 1, "CounterAdd", 5, []], [32, "c", "o", 5]):
        with pytest.raises(ValueError):
            decode_batch(msgpack.packb([bad]))


# ---------------------------------------------------------------------------------------- decoding --
def test_decode_op_is_strict_about_types_and_arity() -> None:
    assert decode_op(counter.CounterAdd, ("k", 3)) == counter.CounterAdd("k", 3)
    with pytest.raises(ValueError, match="needs 2 arguments"):
        decode_op(counter.CounterAdd, ("k",))
    with pytest.raises(ValueError, match="amount"):
        decode_op(counter.CounterAdd, ("k", True))  # a bool is not an int
    with pytest.raises(ValueError, match="key"):
        decode_op(counter.CounterAdd, (b"k", 3))


def test_malformed_unknown_and_invalid_commands_are_rejected_without_writing() -> None:
    kv = machine()
    cases = [
        (LayerCommand("counter", "CounterAdd", 0, ("k", "3")), "malformed counter command"),
        (LayerCommand("counter", "Explode", 0, ("k",)), "unknown counter operation"),
        (LayerCommand("counter", "CounterAdd", 0, ("", 3)), "key cannot be empty"),
        (LayerCommand("counter", "CounterAdd", 0, ("k", -1)), "amount must be between"),
        (LayerCommand("sequence", "SequenceReserve", 0, ("k" * 2000, 1)), "exceeds maximum"),
    ]
    for i, (cmd, message) in enumerate(cases, start=1):
        res = kv.apply(i, cmd)
        assert not res.is_success and message in res.error
    assert kv.apply(9, LayerCommand("nope", "x", 0, ())) == LayerRejected("unknown coordination layer 'nope'")
    assert len(kv) == 0 and kv.applied_index == 9


# -------------------------------------------------------------------------------------- atomicity --
@dataclass(frozen=True, slots=True)
class PutThenFail:
    keys: tuple[str, ...]

    def check(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    error: str | None = None
    now_ms: int = 0


def _put_then_fail(txn: KvTxn, op: PutThenFail, now_ms: int) -> Outcome:
    for key in op.keys:
        txn.put(key, b"x")
    if "fail" in op.keys:
        raise Rejected("asked to fail")
    return Outcome(ok=True, now_ms=now_ms)


TEST_LAYER = Layer(
    name="test", ops=(PutThenFail,), apply=_put_then_fail, rejected=lambda e: Outcome(False, e)
)


def test_a_rejected_operation_leaves_no_partial_writes() -> None:
    kv = KvStateMachine(layers={"test": TEST_LAYER})
    assert kv.apply(1, TEST_LAYER.command(PutThenFail(("a", "b", "fail")), 0)) == Outcome(
        False, "asked to fail"
    )
    assert len(kv) == 0
    # An over-long key found while applying is a rejection too, after earlier puts.
    res = kv.apply(2, TEST_LAYER.command(PutThenFail(("a", "k" * 2000)), 0))
    assert not res.ok and "exceeds maximum" in (res.error or "")
    assert len(kv) == 0
    assert kv.apply(3, TEST_LAYER.command(PutThenFail(("a", "b")), 77)) == Outcome(True, now_ms=77)
    assert [k for k, _ in kv.items()] == ["a", "b"]
    assert kv.get_entry("a").mod_revision == 3  # type: ignore[union-attr]


def test_command_rejects_ops_of_another_layer() -> None:
    with pytest.raises(TypeError):
        counter.LAYER.command(sequence.SequenceReserve("k", 1), 0)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- txn reads --
KEYS = ["p/a", "p/b", "p/c", "p/d", "q/a", "p"]


@settings(max_examples=200)
@given(
    base=st.dictionaries(st.sampled_from(KEYS), st.binary(max_size=2)),
    writes=st.lists(st.tuples(st.sampled_from(KEYS), st.none() | st.binary(max_size=2)), max_size=8),
    prefix=st.sampled_from(["", "p", "p/", "q/", "z"]),
    after=st.none() | st.sampled_from(KEYS),
    limit=st.none() | st.integers(0, 5),
)
def test_txn_reads_see_its_own_writes(
    base: dict[str, bytes],
    writes: list[tuple[str, bytes | None]],
    prefix: str,
    after: str | None,
    limit: int | None,
) -> None:
    kv = KvStateMachine()
    for key, value in base.items():
        kv.apply(1, Write(key, value))
    txn = KvTxn(kv)
    model = dict(base)
    for key, value in writes:
        if value is None:
            txn.delete(key)
            model.pop(key, None)
        else:
            txn.put(key, value)
            model[key] = value
    expected = sorted(
        (k, v) for k, v in model.items() if k.startswith(prefix) and (after is None or k > after)
    )
    if limit is not None:
        expected = expected[:limit]
    assert txn.scan(prefix, after=after, limit=limit) == expected
    assert all(txn.get(k) == model.get(k) for k in KEYS)
    assert [(k, e.value) for k, e in kv.items()] == sorted(base.items())  # nothing committed yet


# ------------------------------------------------------------------------------------------ state --
def test_layer_state_is_plain_keys_covered_by_snapshots_and_state_hash() -> None:
    a, b = machine(), machine()
    cmds = [
        counter.LAYER.command(counter.CounterAdd("hits", 5), 1000),
        sequence.LAYER.command(sequence.SequenceReserve("ids", 3), 1001),
    ]
    data = encode_batch(cmds)
    results = [[m.apply(7, c) for c in decode_batch(data)] for m in (a, b)]
    assert results[0] == results[1] == [counter.CounterResult(True, 5), sequence.SequenceResult(True, 1)]
    assert a.state_hash() == b.state_hash()
    assert [(k, e.value) for k, e in a.items()] == [("__coord:counter:hits", b"5"), ("__coord:seq:ids", b"3")]
    restored = KvStateMachine.from_snapshot(a.snapshot(), APPLIERS)
    assert restored.state_hash() == a.state_hash()
    assert restored.apply(8, counter.LAYER.command(counter.CounterAdd("hits", 1), 0)).value == 6
