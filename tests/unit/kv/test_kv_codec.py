"""The log codec: exact round trips, compact tags, and ValueError (only) on malformed input."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aspen.kv import (
    BatchWrite,
    Command,
    CompareAndDelete,
    CompareAndSwap,
    ConditionalBatchWrite,
    Delete,
    DeleteOp,
    KeyExists,
    KeyNotExists,
    SetOp,
    ValueEquals,
    Write,
    decode_batch,
    decode_command,
    encode_batch,
    encode_command,
)

EXAMPLES: list[Command] = [
    Write("k", b"v"),
    Write("k", b"", lease_id=2**63 - 1),
    Write("é/😀", b"\x00\xff"),
    Delete("k"),
    CompareAndSwap("k", None, b"new"),
    CompareAndSwap("k", b"", b""),
    CompareAndSwap("k", b"old", b"new"),
    CompareAndDelete("k", b""),
    BatchWrite(()),
    BatchWrite((SetOp("a", b""), DeleteOp("b"), SetOp("c", b"3"))),
    ConditionalBatchWrite((), ()),
    ConditionalBatchWrite(
        (ValueEquals("a", b""), KeyExists("b"), KeyNotExists("c"), ValueEquals("d", b"4")),
        (DeleteOp("a"), SetOp("b", b"2")),
    ),
    # Invalid but well-typed commands still encode: the verdict belongs to apply, on every replica.
    Write("", b"v"),
]


@pytest.mark.parametrize("cmd", EXAMPLES)
def test_round_trip_each_command(cmd: Command) -> None:
    assert decode_command(encode_command(cmd)) == cmd
    assert decode_batch(encode_batch([cmd])) == [cmd]


def test_round_trip_batch_keeps_order_and_types() -> None:
    decoded = decode_batch(encode_batch(EXAMPLES))
    assert decoded == EXAMPLES
    assert [type(c) for c in decoded] == [type(c) for c in EXAMPLES]
    cas = decoded[4]
    assert isinstance(cas, CompareAndSwap) and cas.expected is None and type(cas.new_value) is bytes


def test_empty_batch() -> None:
    assert decode_batch(encode_batch([])) == []


def test_encoding_is_compact_and_positional() -> None:
    assert encode_command(Write("k", b"v")) == [1, "k", b"v", None]
    assert encode_command(BatchWrite((SetOp("a", b"1"), DeleteOp("b")))) == [5, ["a", b"1", "b", None]]
    # batch array(1) + command array(1) + tag(1) + str "k"(2) + bin b"v"(3) + nil(1)
    assert len(encode_batch([Write("k", b"v")])) == 9


def test_encoding_a_non_command_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_command("set k v")  # type: ignore[arg-type]


def pack(obj: object) -> bytes:
    return msgpack.packb(obj)  # type: ignore[no-any-return]


MALFORMED: list[bytes] = [
    b"",
    b"\xc1",  # reserved msgpack byte
    b"\x91",  # array of 1, truncated
    b"\xdd\xff\xff\xff\xff",  # huge array header, no data
    encode_batch([Write("k", b"v")]) + b"\x00",  # trailing data
    pack({"k": 1}),
    pack("text"),
    pack([1, "k", b"v", None]),  # a command, not a batch of them
    pack([[]]),
    pack([[99, "k"]]),
    pack([["1", "k", b"v", None]]),
    pack([[True, "k"]]),
    pack([[1, "k", b"v"]]),
    pack([[1, "k", b"v", None, None]]),
    pack([[1, "k", "not bytes", None]]),
    pack([[1, b"k", b"v", None]]),
    pack([[1, "k", b"v", True]]),
    pack([[1, "k", b"v", 1.5]]),
    pack([[2, None]]),
    pack([[3, "k", "x", b"v"]]),
    pack([[4, "k", None]]),
    pack([[5, ["a"]]]),
    pack([[5, ["a", "str"]]]),
    pack([[5, "ops"]]),
    pack([[6, [0, "a"], []]]),
    pack([[6, [7, "a"], []]]),
    pack([[6, [False, "a"], []]]),
    pack([[6, [1], []]]),
    pack([[6, [1, "a"]]]),
    pack([[1, "k", msgpack.ExtType(5, b"x"), None]]),
    b"\x91\x94\x01\xa1k\xc4\x01v\xd6\xff\x00\x00\x00\x00",  # timestamp ext as lease id
    b"\x91\x94\x01\xa1\xff\xc4\x01v\xc0",  # invalid UTF-8 in the key
    b"\x91" * 5000,  # deep nesting
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_batches_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_batch(data)


@pytest.mark.parametrize("obj", [None, 1, "x", [], [None], {"tag": 1}, (1, "k", b"v", None)])
def test_decode_command_rejects_non_commands(obj: object) -> None:
    with pytest.raises(ValueError):
        decode_command(obj)


def test_decode_batch_rejects_non_bytes() -> None:
    with pytest.raises(ValueError):
        decode_batch("text")  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_value_error(data: bytes) -> None:
    try:
        cmds = decode_batch(data)
    except ValueError:
        return
    assert decode_batch(encode_batch(cmds)) == cmds


keys = st.text(max_size=8)
values = st.binary(max_size=16)
ops = st.one_of(st.builds(SetOp, keys, values), st.builds(DeleteOp, keys))
conditions = st.one_of(
    st.builds(ValueEquals, keys, values), st.builds(KeyExists, keys), st.builds(KeyNotExists, keys)
)
commands = st.one_of(
    st.builds(Write, keys, values, st.none() | st.integers(0, 2**63)),
    st.builds(Delete, keys),
    st.builds(CompareAndSwap, keys, st.none() | values, values),
    st.builds(CompareAndDelete, keys, values),
    st.builds(BatchWrite, st.lists(ops, max_size=5).map(tuple)),
    st.builds(
        ConditionalBatchWrite,
        st.lists(conditions, max_size=5).map(tuple),
        st.lists(ops, max_size=5).map(tuple),
    ),
)


@given(st.lists(commands, max_size=8))
def test_round_trip_property(cmds: list[Command]) -> None:
    assert decode_batch(encode_batch(cmds)) == cmds
