"""Encoding of KV commands for the Raft log.

A command is encoded as a msgpack array `[tag, *fields]`: a small integer tag per command type and
the fields by position (no field names), bytes as msgpack bin, str as msgpack str, None as nil.
Batch operations and conditions are flattened into one array instead of one array each:

    Write                  [1, key, value, lease_id]
    Delete                 [2, key]
    CompareAndSwap         [3, key, expected, new_value]
    CompareAndDelete       [4, key, expected]
    BatchWrite             [5, ops]                 ops = [key, value-or-nil, ...]  (nil = DeleteOp)
    ConditionalBatchWrite  [6, conditions, ops]     conditions = [kind, key, (expected,) ...]
                                                    kind 0 = ValueEquals (has expected),
                                                    1 = KeyExists, 2 = KeyNotExists
    LayerCommand           [32, layer, op, now_ms, args]   args = array of plain values (nested
                                                    arrays come back as tuples); see docs/layers.md

    LeaseGrant             [16, ttl_seconds, now_ms, lease_id-or-nil]
    LeaseRevoke            [17, lease_id]
    LeaseKeepalive         [18, lease_id, now_ms]
    LeaseRevokeExpired     [19, [lease_id, ...], now_ms]
    WriteWithLease         [20, key, value, lease_id, now_ms]

A log entry's payload (`encode_batch`) is a msgpack array of such commands.

Invariants:
- Tags and layouts are persistent (they live in WALs and snapshots of the log): never renumber or
  reorder; add new commands under new tags. Reserved: 1-15 KV, 16-31 leases, 32-63 coordination
  (32 = every coordination layer's command; 33-63 spare).
- Round trips are exact: `decode_command(encode_command(c)) == c` for every command with fields of
  the declared types (bytes stay bytes, None stays None, sequences come back as tuples).
- Decoding checks structure and field types strictly and raises `ValueError`, and nothing else, on
  any malformed input. It does not check limits: that is `validate`'s job, at apply time, so that
  an over-limit entry still decodes and fails the same way on every replica.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import msgpack

from aspen.kv.commands import (
    BatchOp,
    BatchWrite,
    Command,
    CompareAndDelete,
    CompareAndSwap,
    Condition,
    ConditionalBatchWrite,
    Delete,
    DeleteOp,
    KeyExists,
    KeyNotExists,
    SetOp,
    ValueEquals,
    Write,
)
from aspen.kv.layer import LayerCommand
from aspen.kv.lease_commands import (
    LeaseCommand,
    LeaseGrant,
    LeaseKeepalive,
    LeaseRevoke,
    LeaseRevokeExpired,
    WriteWithLease,
)

TAG_WRITE: Final = 1
TAG_DELETE: Final = 2
TAG_COMPARE_AND_SWAP: Final = 3
TAG_COMPARE_AND_DELETE: Final = 4
TAG_BATCH_WRITE: Final = 5
TAG_CONDITIONAL_BATCH_WRITE: Final = 6
TAG_LAYER: Final = 32

_COND_VALUE_EQUALS: Final = 0
_COND_KEY_EXISTS: Final = 1
_COND_KEY_NOT_EXISTS: Final = 2


# ------------------------------------------------------------------------------------------------
# Field checks for decoding. Exact type checks: msgpack only produces these exact types, and `bool`
# must not pass as an int.


def _str(x: object) -> str:
    if type(x) is not str:
        raise ValueError(f"expected str, got {type(x).__name__}")
    return x


def _bytes(x: object) -> bytes:
    if type(x) is not bytes:
        raise ValueError(f"expected bytes, got {type(x).__name__}")
    return x


def _opt_bytes(x: object) -> bytes | None:
    return None if x is None else _bytes(x)


def _opt_int(x: object) -> int | None:
    if x is None:
        return None
    if type(x) is not int:
        raise ValueError(f"expected int or nil, got {type(x).__name__}")
    return x


def _int(x: object) -> int:
    if type(x) is not int:
        raise ValueError(f"expected int, got {type(x).__name__}")
    return x


def _list(x: object) -> list[Any]:
    if type(x) is not list:
        raise ValueError(f"expected array, got {type(x).__name__}")
    return x


def _fields(obj: list[Any], count: int) -> list[Any]:
    if len(obj) != count + 1:
        raise ValueError(f"command tag {obj[0]} needs {count} fields, got {len(obj) - 1}")
    return obj[1:]


# ------------------------------------------------------------------------------------------------
# Batch ops and conditions (flattened)


def _encode_ops(ops: Sequence[BatchOp]) -> list[Any]:
    flat: list[Any] = []
    for op in ops:
        if isinstance(op, SetOp):
            flat += (op.key, op.value)
        elif isinstance(op, DeleteOp):
            flat += (op.key, None)
        else:
            raise TypeError(f"not a batch operation: {type(op).__name__}")
    return flat


def _decode_ops(obj: object) -> tuple[BatchOp, ...]:
    flat = _list(obj)
    if len(flat) % 2:
        raise ValueError("batch operations: odd array length")
    ops: list[BatchOp] = []
    for i in range(0, len(flat), 2):
        key = _str(flat[i])
        value = _opt_bytes(flat[i + 1])
        ops.append(DeleteOp(key) if value is None else SetOp(key, value))
    return tuple(ops)


def _encode_conditions(conditions: Sequence[Condition]) -> list[Any]:
    flat: list[Any] = []
    for cond in conditions:
        if isinstance(cond, ValueEquals):
            flat += (_COND_VALUE_EQUALS, cond.key, cond.expected)
        elif isinstance(cond, KeyExists):
            flat += (_COND_KEY_EXISTS, cond.key)
        elif isinstance(cond, KeyNotExists):
            flat += (_COND_KEY_NOT_EXISTS, cond.key)
        else:
            raise TypeError(f"not a condition: {type(cond).__name__}")
    return flat


def _decode_conditions(obj: object) -> tuple[Condition, ...]:
    flat = _list(obj)
    conditions: list[Condition] = []
    i = 0
    try:
        while i < len(flat):
            kind = flat[i]
            key = _str(flat[i + 1])
            if kind == _COND_VALUE_EQUALS and type(kind) is int:
                conditions.append(ValueEquals(key, _bytes(flat[i + 2])))
                i += 3
            elif kind == _COND_KEY_EXISTS and type(kind) is int:
                conditions.append(KeyExists(key))
                i += 2
            elif kind == _COND_KEY_NOT_EXISTS and type(kind) is int:
                conditions.append(KeyNotExists(key))
                i += 2
            else:
                raise ValueError(f"unknown condition kind {kind!r}")
    except IndexError:
        raise ValueError("conditions: truncated array") from None
    return tuple(conditions)


# ------------------------------------------------------------------------------------------------
# Per-command codecs, dispatched by type (encode) and tag (decode): adding a command is one entry in
# each table, not another branch.


def _enc_write(c: Write) -> list[Any]:
    return [TAG_WRITE, c.key, c.value, c.lease_id]


def _dec_write(f: list[Any]) -> Write:
    key, value, lease_id = _fields(f, 3)
    return Write(_str(key), _bytes(value), _opt_int(lease_id))


def _enc_delete(c: Delete) -> list[Any]:
    return [TAG_DELETE, c.key]


def _dec_delete(f: list[Any]) -> Delete:
    (key,) = _fields(f, 1)
    return Delete(_str(key))


def _enc_cas(c: CompareAndSwap) -> list[Any]:
    return [TAG_COMPARE_AND_SWAP, c.key, c.expected, c.new_value]


def _dec_cas(f: list[Any]) -> CompareAndSwap:
    key, expected, new_value = _fields(f, 3)
    return CompareAndSwap(_str(key), _opt_bytes(expected), _bytes(new_value))


def _enc_cad(c: CompareAndDelete) -> list[Any]:
    return [TAG_COMPARE_AND_DELETE, c.key, c.expected]


def _dec_cad(f: list[Any]) -> CompareAndDelete:
    key, expected = _fields(f, 2)
    return CompareAndDelete(_str(key), _bytes(expected))


def _enc_batch(c: BatchWrite) -> list[Any]:
    return [TAG_BATCH_WRITE, _encode_ops(c.ops)]


def _dec_batch(f: list[Any]) -> BatchWrite:
    (ops,) = _fields(f, 1)
    return BatchWrite(_decode_ops(ops))


def _enc_conditional_batch(c: ConditionalBatchWrite) -> list[Any]:
    return [TAG_CONDITIONAL_BATCH_WRITE, _encode_conditions(c.conditions), _encode_ops(c.ops)]


def _dec_conditional_batch(f: list[Any]) -> ConditionalBatchWrite:
    conditions, ops = _fields(f, 2)
    return ConditionalBatchWrite(_decode_conditions(conditions), _decode_ops(ops))


def _enc_layer(c: LayerCommand) -> list[Any]:
    return [TAG_LAYER, c.layer, c.op, c.now_ms, list(c.args)]


def _tuples(x: object) -> object:
    # Arrays inside layer args come back as tuples, so a decoded command equals (and hashes like) the
    # one that was encoded.
    return tuple(_tuples(i) for i in x) if type(x) is list else x


def _dec_layer(f: list[Any]) -> LayerCommand:
    layer, op, now_ms, args = _fields(f, 4)
    if type(now_ms) is not int:
        raise ValueError(f"expected int, got {type(now_ms).__name__}")
    return LayerCommand(_str(layer), _str(op), now_ms, tuple(_tuples(a) for a in _list(args)))


_ENCODERS: dict[type[Any], Callable[[Any], list[Any]]] = {
    Write: _enc_write,
    Delete: _enc_delete,
    CompareAndSwap: _enc_cas,
    CompareAndDelete: _enc_cad,
    BatchWrite: _enc_batch,
    ConditionalBatchWrite: _enc_conditional_batch,
    LayerCommand: _enc_layer,
}

_DECODERS: dict[int, Callable[[list[Any]], Command | LayerCommand | LeaseCommand]] = {
    TAG_WRITE: _dec_write,
    TAG_DELETE: _dec_delete,
    TAG_COMPARE_AND_SWAP: _dec_cas,
    TAG_COMPARE_AND_DELETE: _dec_cad,
    TAG_BATCH_WRITE: _dec_batch,
    TAG_CONDITIONAL_BATCH_WRITE: _dec_conditional_batch,
    TAG_LAYER: _dec_layer,
}


# ------------------------------------------------------------------------------------------------
# Leases (tags 16-31)

TAG_LEASE_GRANT: Final = 16
TAG_LEASE_REVOKE: Final = 17
TAG_LEASE_KEEPALIVE: Final = 18
TAG_LEASE_REVOKE_EXPIRED: Final = 19
TAG_WRITE_WITH_LEASE: Final = 20


def _enc_lease_grant(c: LeaseGrant) -> list[Any]:
    return [TAG_LEASE_GRANT, c.ttl_seconds, c.now_ms, c.lease_id]


def _dec_lease_grant(f: list[Any]) -> LeaseGrant:
    ttl, now_ms, lease_id = _fields(f, 3)
    return LeaseGrant(_int(ttl), _int(now_ms), _opt_int(lease_id))


def _enc_lease_revoke(c: LeaseRevoke) -> list[Any]:
    return [TAG_LEASE_REVOKE, c.lease_id]


def _dec_lease_revoke(f: list[Any]) -> LeaseRevoke:
    (lease_id,) = _fields(f, 1)
    return LeaseRevoke(_int(lease_id))


def _enc_lease_keepalive(c: LeaseKeepalive) -> list[Any]:
    return [TAG_LEASE_KEEPALIVE, c.lease_id, c.now_ms]


def _dec_lease_keepalive(f: list[Any]) -> LeaseKeepalive:
    lease_id, now_ms = _fields(f, 2)
    return LeaseKeepalive(_int(lease_id), _int(now_ms))


def _enc_lease_revoke_expired(c: LeaseRevokeExpired) -> list[Any]:
    return [TAG_LEASE_REVOKE_EXPIRED, list(c.lease_ids), c.now_ms]


def _dec_lease_revoke_expired(f: list[Any]) -> LeaseRevokeExpired:
    ids, now_ms = _fields(f, 2)
    return LeaseRevokeExpired(tuple(_int(i) for i in _list(ids)), _int(now_ms))


def _enc_write_with_lease(c: WriteWithLease) -> list[Any]:
    return [TAG_WRITE_WITH_LEASE, c.key, c.value, c.lease_id, c.now_ms]


def _dec_write_with_lease(f: list[Any]) -> WriteWithLease:
    key, value, lease_id, now_ms = _fields(f, 4)
    return WriteWithLease(_str(key), _bytes(value), _int(lease_id), _int(now_ms))


_ENCODERS.update(
    {
        LeaseGrant: _enc_lease_grant,
        LeaseRevoke: _enc_lease_revoke,
        LeaseKeepalive: _enc_lease_keepalive,
        LeaseRevokeExpired: _enc_lease_revoke_expired,
        WriteWithLease: _enc_write_with_lease,
    }
)
_DECODERS.update(
    {
        TAG_LEASE_GRANT: _dec_lease_grant,
        TAG_LEASE_REVOKE: _dec_lease_revoke,
        TAG_LEASE_KEEPALIVE: _dec_lease_keepalive,
        TAG_LEASE_REVOKE_EXPIRED: _dec_lease_revoke_expired,
        TAG_WRITE_WITH_LEASE: _dec_write_with_lease,
    }
)

# ------------------------------------------------------------------------------------------------
# Public API


def encode_command(cmd: Command | LayerCommand | LeaseCommand) -> list[Any]:
    """The msgpack-ready form of `cmd`. Raises `TypeError` if `cmd` is not a KV command."""
    encoder = _ENCODERS.get(type(cmd))
    if encoder is None:
        raise TypeError(f"not a KV command: {type(cmd).__name__}")
    return encoder(cmd)


def decode_command(obj: object) -> Command | LayerCommand | LeaseCommand:
    """Inverse of `encode_command` (on the msgpack-decoded object). Raises `ValueError` if malformed."""
    items = _list(obj)
    if not items:
        raise ValueError("empty command array")
    tag = items[0]
    decoder = _DECODERS.get(tag) if type(tag) is int else None
    if decoder is None:
        raise ValueError(f"unknown command tag {tag!r}")
    return decoder(items)


def encode_batch(cmds: Sequence[Command | LayerCommand | LeaseCommand]) -> bytes:
    """One log entry's payload: the commands, in order, as a msgpack array."""
    packed: bytes = msgpack.packb([encode_command(cmd) for cmd in cmds], use_bin_type=True)
    return packed


def decode_batch(data: bytes) -> list[Command | LayerCommand | LeaseCommand]:
    """Inverse of `encode_batch`. Raises `ValueError` (only) on any malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"expected bytes, got {type(data).__name__}")
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (incl. TypeError) on garbage: normalize.
        raise ValueError(f"malformed command batch: {exc}") from exc
    return [decode_command(item) for item in _list(obj)]


__all__ = [
    "TAG_BATCH_WRITE",
    "TAG_COMPARE_AND_DELETE",
    "TAG_COMPARE_AND_SWAP",
    "TAG_CONDITIONAL_BATCH_WRITE",
    "TAG_DELETE",
    "TAG_LAYER",
    "TAG_LEASE_GRANT",
    "TAG_LEASE_KEEPALIVE",
    "TAG_LEASE_REVOKE",
    "TAG_LEASE_REVOKE_EXPIRED",
    "TAG_WRITE",
    "TAG_WRITE_WITH_LEASE",
    "decode_batch",
    "decode_command",
    "encode_batch",
    "encode_command",
]
