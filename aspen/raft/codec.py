"""Wire encoding of Raft `Message`s between nodes (msgpack, compact positional arrays).

A message is one msgpack array of exactly 13 items, in this order::

    [type, to, frm, term, log_term, index, commit, reject, reject_hint, log_term_hint, context,
     entries, snapshot]

* `entries` is an array of `[term, index, entry_type, data]` arrays;
* `snapshot` is nil (no snapshot) or `[[index, term, voters, learners], data]`;
* `reject` is a msgpack bool, `context` and every `data` are msgpack bin, all other scalars are
  unsigned integers.

Invariants:

* `decode_message(encode_message(m)) == m` for every `Message` whose fields hold values of their
  declared types (exact round trip, including `snapshot=None` vs. an empty `Snapshot`).
* `decode_message` treats its input as untrusted: whatever the bytes, it either returns a well-typed
  `Message` or raises `ValueError` -- never another exception type. Integers must be non-negative
  (msgpack caps them at 2**64-1), enum values must be known, `True`/`False` are not accepted where
  an integer is expected, and bytes fields must be msgpack bin (not str).
* The codec itself accepts every `MessageType`, local ones included; refusing local types from the
  network is the transport's (and the core's) job.
"""

from __future__ import annotations

from typing import Any

import msgpack

from aspen.raft.core.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

__all__ = ["decode_message", "encode_message"]

_FIELDS = 13

# int -> enum lookups: a dict hit is cheaper than calling the enum and catching its ValueError, and
# it is how unknown values are detected without exceptions on the hot path.
_MESSAGE_TYPES: dict[int, MessageType] = {int(t): t for t in MessageType}
_ENTRY_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}
_NORMAL = EntryType.NORMAL


def encode_message(msg: Message) -> bytes:
    """Serialise `msg`. Trusts its input (it comes from our own Raft core)."""
    snap = msg.snapshot
    snapshot: Any = None
    if snap is not None:
        meta = snap.meta
        cs = meta.conf_state
        snapshot = ((meta.index, meta.term, cs.voters, cs.learners), snap.data)
    entries = msg.entries
    # The replication hot path: one tuple per entry and a single packb call. msgpack packs IntEnum
    # members (int subclasses) as plain integers, so no int() conversion is needed.
    packed_entries: Any = [(e.term, e.index, e.type, e.data) for e in entries] if entries else ()
    packed: bytes = msgpack.packb(
        (
            msg.type,
            msg.to,
            msg.frm,
            msg.term,
            msg.log_term,
            msg.index,
            msg.commit,
            msg.reject,
            msg.reject_hint,
            msg.log_term_hint,
            msg.context,
            packed_entries,
            snapshot,
        ),
        use_bin_type=True,
    )
    return packed


def _uint(value: object, what: str) -> int:
    # `type(...) is int` on purpose: bool is an int subclass and must not pass as a number.
    if type(value) is not int or value < 0:
        raise ValueError(f"malformed raft message: {what} must be a non-negative integer")
    return value


def _bytes(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise ValueError(f"malformed raft message: {what} must be bytes")
    return value


def _node_ids(value: object, what: str) -> tuple[int, ...]:
    if type(value) is not tuple:
        raise ValueError(f"malformed raft message: {what} must be an array")
    for v in value:
        _uint(v, what)
    return value


def _decode_entries(value: object) -> tuple[Entry, ...]:
    if type(value) is not tuple:
        raise ValueError("malformed raft message: entries must be an array")
    if not value:
        return ()
    out: list[Entry] = []
    append = out.append
    entry_types = _ENTRY_TYPES
    for item in value:
        if type(item) is not tuple or len(item) != 4:
            raise ValueError("malformed raft message: entry must be [term, index, type, data]")
        term, index, etype, data = item
        if (
            type(term) is not int
            or term < 0
            or type(index) is not int
            or index < 0
            or type(etype) is not int
            or type(data) is not bytes
        ):
            raise ValueError("malformed raft message: bad entry field types")
        et = entry_types.get(etype)
        if et is None:
            raise ValueError(f"malformed raft message: unknown entry type {etype}")
        append(Entry(term, index, et, data))
    return tuple(out)


def _decode_snapshot(value: object) -> Snapshot | None:
    if value is None:
        return None
    if type(value) is not tuple or len(value) != 2:
        raise ValueError("malformed raft message: snapshot must be [meta, data]")
    meta, data = value
    if type(meta) is not tuple or len(meta) != 4:
        raise ValueError("malformed raft message: snapshot meta must be [index, term, voters, learners]")
    index, term, voters, learners = meta
    return Snapshot(
        meta=SnapshotMeta(
            index=_uint(index, "snapshot index"),
            term=_uint(term, "snapshot term"),
            conf_state=ConfState(
                voters=_node_ids(voters, "snapshot voters"),
                learners=_node_ids(learners, "snapshot learners"),
            ),
        ),
        data=_bytes(data, "snapshot data"),
    )


def decode_message(data: bytes) -> Message:
    """Inverse of `encode_message`. Raises only `ValueError` on malformed input."""
    try:
        # use_list=False: arrays come back as tuples, which is what the dataclasses hold anyway.
        # strict_map_key keeps map keys hashable scalars (a map is never valid here, but must not
        # raise TypeError while being built). msgpack bounds every declared length by len(data),
        # so hostile length prefixes cannot make it allocate more than the input size.
        obj: Any = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    except ValueError:
        raise  # ExtraData, FormatError, StackError, UnicodeDecodeError are all ValueErrors
    except Exception as exc:  # msgpack raises several unrelated exception types on garbage
        raise ValueError(f"malformed raft message: {exc}") from exc
    if type(obj) is not tuple or len(obj) != _FIELDS:
        raise ValueError(f"malformed raft message: expected an array of {_FIELDS} items")
    (
        mtype,
        to,
        frm,
        term,
        log_term,
        index,
        commit,
        reject,
        reject_hint,
        log_term_hint,
        context,
        entries,
        snapshot,
    ) = obj
    msg_type = _MESSAGE_TYPES.get(mtype) if type(mtype) is int else None
    if msg_type is None:
        raise ValueError(f"malformed raft message: unknown message type {mtype!r}")
    if type(reject) is not bool:
        raise ValueError("malformed raft message: reject must be a bool")
    return Message(
        type=msg_type,
        to=_uint(to, "to"),
        frm=_uint(frm, "frm"),
        term=_uint(term, "term"),
        log_term=_uint(log_term, "log_term"),
        index=_uint(index, "index"),
        entries=_decode_entries(entries),
        commit=_uint(commit, "commit"),
        snapshot=_decode_snapshot(snapshot),
        reject=reject,
        reject_hint=_uint(reject_hint, "reject_hint"),
        log_term_hint=_uint(log_term_hint, "log_term_hint"),
        context=_bytes(context, "context"),
    )
