"""Property test: counters behave like a dict of Python ints with clamping, over random operation
sequences that go through the whole log path (encode → decode → KvStateMachine.apply).

The model is written from reference §7.2 independently of the layer's code: unsigned values are
clamped to [0, 2**64-1], signed to [-2**63, 2**63-1], both share one value per key, a missing key
is 0, a failed cas reports the actual value and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, counter
from aspen.layers.counter import (
    CounterAdd,
    CounterCas,
    CounterOp,
    CounterResult,
    CounterSet,
    CounterSub,
    SignedCounterAdd,
)

U64_MAX = 2**64 - 1


def through_log(cmd: LayerCommand) -> LayerCommand:
    """`cmd` after a trip through the log codec, if msgpack can carry it (ints beyond u64/i64 cannot:
    the proposer rejects those before encoding, so they are applied as objects to test `apply`)."""
    if all(-(2**63) <= a <= U64_MAX for a in cmd.args if type(a) is int):
        (decoded,) = decode_batch(encode_batch([cmd]))
        assert isinstance(decoded, LayerCommand)
        return decoded
    return cmd


I64_MIN, I64_MAX = -(2**63), 2**63 - 1
KEYS = ["a", "b", "ü/c"]
# Small numbers so operations collide, boundary values to reach saturation, out-of-range ones to be
# rejected.
U64S = st.one_of(st.integers(0, 5), st.sampled_from([U64_MAX, U64_MAX - 1, I64_MAX, I64_MAX + 1, 2**64, -1]))
I64S = st.one_of(st.integers(-5, 5), st.sampled_from([I64_MIN, I64_MAX, I64_MIN - 1, I64_MAX + 1]))
key = st.sampled_from(KEYS)


@dataclass(frozen=True)
class Get:
    key: str
    signed: bool


ops = st.one_of(
    st.builds(CounterAdd, key, U64S),
    st.builds(CounterSub, key, U64S),
    st.builds(CounterSet, key, U64S),
    st.builds(CounterCas, key, U64S, U64S),
    st.builds(SignedCounterAdd, key, I64S),
    st.builds(Get, key, st.booleans()),
)


class Model:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def read(self, key: str, signed: bool) -> int | None:
        v = self.values.get(key, 0)
        ok = I64_MIN <= v <= I64_MAX if signed else 0 <= v <= U64_MAX
        return v if ok else None

    def step(self, op: CounterOp | Get) -> tuple[bool, int | None]:
        """(is_success, value) the reference promises."""
        if isinstance(op, Get):
            v = self.read(op.key, op.signed)
            return (v is not None, v)
        if isinstance(op, SignedCounterAdd):
            if not I64_MIN <= op.amount <= I64_MAX:
                return (False, None)
            v = self.read(op.key, True)
            if v is None:
                return (False, None)
            self.values[op.key] = max(I64_MIN, min(I64_MAX, v + op.amount))
            return (True, self.values[op.key])
        numbers = (
            [op.expected, op.new_value]
            if isinstance(op, CounterCas)
            else [op.value if isinstance(op, CounterSet) else op.amount]
        )
        if not all(0 <= n <= U64_MAX for n in numbers):
            return (False, None)
        v = self.read(op.key, False)
        if v is None:
            return (False, None)
        if isinstance(op, CounterAdd):
            new = min(U64_MAX, v + op.amount)
        elif isinstance(op, CounterSub):
            new = max(0, v - op.amount)
        elif isinstance(op, CounterSet):
            new = op.value
        elif v != op.expected:
            return (False, v)
        else:
            new = op.new_value
        self.values[op.key] = new
        return (True, new)


@settings(max_examples=300)
@given(st.lists(st.lists(ops, min_size=1, max_size=4), max_size=25))
def test_counters_match_the_model(entries: list[list[CounterOp | Get]]) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    for index, entry in enumerate(entries, start=1):
        # Consecutive writes share one log entry, as group commit does; gets are queries.
        for op in entry:
            expected = model.step(op)
            if isinstance(op, Get):
                res: CounterResult = counter.get(KvView(kv), op.key, signed=op.signed)
            else:
                cmd = through_log(counter.LAYER.command(op, now_ms=index))
                res = kv.apply(index, cmd)
            assert (res.is_success, res.value) == expected, op
            assert (res.error is None) == res.is_success
        stored = {k.removeprefix(counter.PREFIX): int(e.value) for k, e in kv.items(counter.PREFIX)}
        assert stored == model.values
