"""Wire codec of Raft messages: exact round trips, and only `ValueError` on hostile input."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.raft.codec import decode_message, encode_message
from aspen.raft.core.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

U64 = 2**64 - 1

uints = st.integers(min_value=0, max_value=U64)
small = st.integers(min_value=0, max_value=1000)
node_ids = st.tuples() | st.lists(st.integers(min_value=1, max_value=U64), max_size=5).map(tuple)
entries = st.builds(
    Entry,
    term=uints,
    index=uints,
    type=st.sampled_from(EntryType),
    data=st.binary(max_size=64),
)
snapshots = st.builds(
    Snapshot,
    meta=st.builds(
        SnapshotMeta,
        index=uints,
        term=uints,
        conf_state=st.builds(ConfState, voters=node_ids, learners=node_ids),
    ),
    data=st.binary(max_size=256),
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=uints,
    frm=uints,
    term=uints,
    log_term=uints,
    index=uints,
    entries=st.lists(entries, max_size=8).map(tuple),
    commit=uints,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=uints,
    log_term_hint=uints,
    context=st.binary(max_size=32),
)


def _roundtrip(msg: Message) -> Message:
    out = decode_message(encode_message(msg))
    assert out == msg
    # Equality of IntEnum and int would hide a lost enum type: check the types too.
    assert type(out.type) is MessageType
    assert all(type(e.type) is EntryType for e in out.entries)
    return out


@pytest.mark.parametrize("mtype", list(MessageType))
def test_every_message_type_round_trips(mtype: MessageType) -> None:
    msg = Message(
        type=mtype,
        to=2,
        frm=1,
        term=7,
        log_term=6,
        index=100,
        entries=(
            Entry(term=6, index=101, data=b"a"),
            Entry(term=7, index=102, type=EntryType.CONF_CHANGE, data=b"\x93\x00\x04\xc4\x00"),
            Entry(term=7, index=103),
        ),
        commit=99,
        snapshot=Snapshot(SnapshotMeta(index=50, term=5, conf_state=ConfState((1, 2, 3), (4,))), b"image"),
        reject=True,
        reject_hint=42,
        log_term_hint=3,
        context=b"\x00ctx\xff",
    )
    _roundtrip(msg)
    _roundtrip(Message(type=mtype))


def test_typical_messages_round_trip() -> None:
    _roundtrip(Message(MessageType.HEARTBEAT, to=3, frm=1, term=9, commit=20, context=b"read-1"))
    _roundtrip(
        Message(
            MessageType.APP_RESP, to=1, frm=2, term=9, index=17, reject=True, reject_hint=12, log_term_hint=8
        )
    )
    _roundtrip(Message(MessageType.SNAP, to=2, frm=1, term=9, snapshot=Snapshot()))  # empty, not None
    big = Snapshot(SnapshotMeta(index=U64, term=U64, conf_state=ConfState((U64,), ())), b"\x00" * 100_000)
    _roundtrip(Message(MessageType.SNAP, to=2, frm=1, snapshot=big))
    many = tuple(Entry(term=3, index=i, data=b"%d" % i) for i in range(1, 5001))
    assert _roundtrip(Message(MessageType.APP, to=2, frm=1, entries=many)).entries == many


def test_none_snapshot_and_empty_snapshot_stay_distinct() -> None:
    assert decode_message(encode_message(Message(MessageType.APP))).snapshot is None
    assert (
        decode_message(encode_message(Message(MessageType.APP, snapshot=Snapshot()))).snapshot == Snapshot()
    )


@given(messages)
def test_random_messages_round_trip(msg: Message) -> None:
    _roundtrip(msg)


def _fields(msg: Message) -> list[Any]:
    decoded: list[Any] = msgpack.unpackb(encode_message(msg), raw=False)
    return decoded


def _pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


BASE = Message(
    MessageType.APP,
    to=2,
    frm=1,
    term=3,
    entries=(Entry(3, 1, EntryType.NORMAL, b"x"),),
    snapshot=Snapshot(SnapshotMeta(1, 1, ConfState((1,), ())), b"s"),
)


@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, 99),  # unknown message type
        (0, -1),
        (0, True),  # bool is not an integer here
        (0, "APP"),
        (1, -1),  # negative node id
        (2, 1.5),
        (3, None),
        (3, True),
        (7, 1),  # reject must be a bool
        (8, -5),
        (10, "ctx"),  # str is not bytes
        (10, None),
        (11, None),
        (11, [[1, 1, 0]]),  # entry arity
        (11, [[1, 1, 5, b""]]),  # unknown entry type
        (11, [[1, -1, 0, b""]]),
        (11, [[1, 1, 0, "data"]]),
        (11, [[1, 1, False, b""]]),
        (11, [1]),
        (11, {"a": 1}),
        (12, [[1, 1, [1], []], "data"]),
        (12, [[1, 1, [-1], []], b""]),
        (12, [[1, 1, [True], []], b""]),
        (12, [[1, 1, 1, []], b""]),
        (12, [[1, 1, [1]], b""]),
        (12, [[1, 1, [1], []]]),
        (12, b""),
    ],
)
def test_bad_field_is_rejected(position: int, value: Any) -> None:
    fields = _fields(BASE)
    assert decode_message(_pack(fields)) == BASE
    fields[position] = value
    with pytest.raises(ValueError):
        decode_message(_pack(fields))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x90",  # empty array
        _pack([3] * 12),  # too few fields
        _pack([3] * 14),
        _pack({"type": 3}),
        _pack({(1, 2): 3}),  # non-str map key
        _pack(msgpack.ExtType(1, b"x")),
        encode_message(BASE) + b"\x00",  # trailing garbage
        encode_message(BASE)[:-1],  # truncated
        b"\xdd\xff\xff\xff\xff",  # array header claiming 4G items
        b"\xc6\xff\xff\xff\xff",  # bin header claiming 4 GiB
        b"\x91" * 100_000,  # deep nesting
        b"\xa2\xff\xfe",  # invalid UTF-8 str
    ],
)
def test_malformed_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_message(data)


def _decode_or_value_error(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except ValueError:
        return
    # Anything accepted must be a well-formed message that re-encodes to an equal message.
    assert isinstance(msg, Message)
    assert decode_message(encode_message(msg)) == msg


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_value_error(data: bytes) -> None:
    _decode_or_value_error(data)


@settings(max_examples=500)
@given(messages, st.data())
def test_mutated_frames_raise_only_value_error(msg: Message, data: st.DataObject) -> None:
    frame = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = data.draw(st.integers(min_value=0, max_value=max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and frame:
            frame[pos] = data.draw(st.integers(min_value=0, max_value=255))
        elif op == "truncate":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and frame:
            del frame[pos]
    _decode_or_value_error(bytes(frame))


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=U64)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


@given(msgpack_values)
def test_arbitrary_msgpack_values_raise_only_value_error(obj: Any) -> None:
    _decode_or_value_error(_pack(obj))


@settings(max_examples=100)
@given(st.lists(msgpack_values, min_size=13, max_size=13))
def test_arbitrary_thirteen_field_arrays_raise_only_value_error(fields: list[Any]) -> None:
    _decode_or_value_error(_pack(fields))


@settings(max_examples=300)
@given(messages, st.integers(min_value=0, max_value=12), msgpack_values)
def test_one_replaced_field_raises_only_value_error(msg: Message, position: int, value: Any) -> None:
    fields = _fields(msg)
    fields[position] = value
    _decode_or_value_error(_pack(fields))
