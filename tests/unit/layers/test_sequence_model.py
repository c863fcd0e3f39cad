"""Property test: sequences against a model (reference §7.3, [Py] `next` = reserve(1)): every ID is
handed out at most once, IDs of one sequence strictly increase, `current` is the next ID to come,
and exhaustion near 2**64-1 fails without writing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, Write, decode_batch, encode_batch
from aspen.layers import APPLIERS, sequence
from aspen.layers.sequence import SequenceReserve, SequenceResult

U64_MAX = 2**64 - 1


def through_log(cmd: LayerCommand) -> LayerCommand:
    """`cmd` after a trip through the log codec, if msgpack can carry it (ints beyond u64/i64 cannot:
    the proposer rejects those before encoding, so they are applied as objects to test `apply`)."""
    if all(-(2**63) <= a <= U64_MAX for a in cmd.args if type(a) is int):
        (decoded,) = decode_batch(encode_batch([cmd]))
        assert isinstance(decoded, LayerCommand)
        return decoded
    return cmd


KEYS = ["s", "t"]
counts = st.one_of(st.integers(1, 5), st.sampled_from([0, -1, U64_MAX, U64_MAX - 3, 2**64]))
ops = st.one_of(
    st.builds(SequenceReserve, st.sampled_from(KEYS), counts),
    st.sampled_from(KEYS),  # a `current` query
)


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from([0, 7, U64_MAX - 6, U64_MAX])),
    st.lists(ops, max_size=30),
)
def test_sequences_match_the_model(start: dict[str, int], steps: list[SequenceReserve | str]) -> None:
    kv = KvStateMachine(layers=APPLIERS)
    for key, value in start.items():
        kv.apply(1, Write(sequence.storage_key(key), str(value).encode()))
    stored = {k: start.get(k, 0) for k in KEYS}
    issued: dict[str, list[int]] = {k: [] for k in KEYS}
    for index, step in enumerate(steps, start=2):
        if isinstance(step, str):
            res: SequenceResult = sequence.current(KvView(kv), step)
            if stored[step] == U64_MAX:
                assert not res.is_success and res.error == "sequence exhausted"
            else:
                assert res == SequenceResult(True, stored[step] + 1)
            continue
        cmd = through_log(sequence.LAYER.command(step, now_ms=index))
        res = kv.apply(index, cmd)
        if not 1 <= step.count <= U64_MAX:
            assert not res.is_success and "count must be between" in (res.error or "")
        elif stored[step.key] + step.count > U64_MAX:
            assert res == SequenceResult(False, None, "sequence exhausted")
        else:
            assert res == SequenceResult(True, stored[step.key] + 1)
            first = res.value
            assert first is not None
            if issued[step.key]:
                assert first > issued[step.key][-1]  # strictly increasing, ranges disjoint
            issued[step.key].append(first + step.count - 1)
            stored[step.key] += step.count
        assert {
            k: int(e.value)
            for k, e in ((k.removeprefix(sequence.PREFIX), e) for k, e in kv.items(sequence.PREFIX))
        } == {k: v for k, v in stored.items() if k in start or issued[k]}


def test_next_gives_one_two_three() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    got = [kv.apply(i, sequence.LAYER.command(SequenceReserve("ids", 1), 0)).value for i in range(1, 4)]
    assert got == [1, 2, 3]
    assert kv.apply(4, sequence.LAYER.command(SequenceReserve("ids", 10), 0)).value == 4
    assert sequence.current(KvView(kv), "ids") == SequenceResult(True, 14)


def test_corrupt_stored_value_is_reported_not_coerced() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    kv.apply(1, Write(sequence.storage_key("s"), b"-3"))
    res = kv.apply(2, sequence.LAYER.command(SequenceReserve("s", 1), 0))
    assert res == SequenceResult(False, None, "corrupted data in key '__coord:seq:s': not a valid u64")
    assert kv.get_entry(sequence.storage_key("s")).value == b"-3"  # type: ignore[union-attr]
