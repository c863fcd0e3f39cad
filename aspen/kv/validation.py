"""Validation of KV commands and queries against the limits in `aspen.kv.limits`.

`validate(cmd)` returns the first error string, or None if the command is acceptable. The node calls
it before proposing (so a bad request costs no log entry) and `KvStateMachine.apply` calls it again
(so a bad entry that is in the log anyway fails identically on every replica).

Invariants:
- Pure and deterministic: the verdict depends only on the command's contents.
- Never raises for a command object, whatever its field types; raises `TypeError` only for an object
  that is not a KV command or query at all (a programming error, not bad input).
- Errors are checked in a fixed order (batch size first, then each item in order, and within an item
  key before value), so every replica and every client sees the same message for the same input.
- The messages in `ERR_*` and the `*_too_large` helpers are part of the client-visible contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aspen.kv.commands import (
    BatchRead,
    BatchWrite,
    CompareAndDelete,
    CompareAndSwap,
    ConditionalBatchWrite,
    Delete,
    DeleteOp,
    KeyExists,
    KeyNotExists,
    Read,
    Scan,
    SetOp,
    ValueEquals,
    Write,
)
from aspen.kv.lease_commands import (
    LeaseGrant,
    LeaseKeepalive,
    LeaseRevoke,
    LeaseRevokeExpired,
    WriteWithLease,
)
from aspen.kv.limits import (
    MAX_BATCH_OPS,
    MAX_EXPIRED_PER_COMMAND,
    MAX_KEY_SIZE,
    MAX_LEASE_ID,
    MAX_LEASE_TTL_SECONDS,
    MAX_VALUE_SIZE,
    MIN_LEASE_ID,
)

ERR_KEY_EMPTY = "key cannot be empty"
# The following cannot be produced through the typed API or the codec (which checks types); they
# exist so that `validate` and `apply` stay total over arbitrary objects.
ERR_KEY_TYPE = "key must be a string"
ERR_KEY_ENCODING = "key is not valid UTF-8"
ERR_VALUE_TYPE = "value must be bytes"
ERR_LEASE_ID = f"lease id must be an integer between {MIN_LEASE_ID} and {MAX_LEASE_ID}"
ERR_LEASE_TTL = f"lease ttl must be between 1 and {MAX_LEASE_TTL_SECONDS} seconds"
ERR_NOW = "now_ms must be a non-negative integer"
ERR_BATCH_TYPE = "batch must be a sequence"
ERR_BATCH_OP = "batch operation must be SetOp or DeleteOp"
ERR_CONDITION = "condition must be ValueEquals, KeyExists or KeyNotExists"
ERR_PREFIX_TYPE = "prefix must be a string"
ERR_LIMIT_TYPE = "limit must be an integer"
ERR_TOKEN_TYPE = "continuation token must be a string"


def key_too_large(size: int) -> str:
    return f"key size {size} exceeds maximum of {MAX_KEY_SIZE} bytes"


def value_too_large(size: int) -> str:
    return f"value size {size} exceeds maximum of {MAX_VALUE_SIZE} bytes"


def batch_too_large(size: int) -> str:
    return f"batch size {size} exceeds maximum of {MAX_BATCH_OPS} keys"


def check_key(key: object) -> str | None:
    if not isinstance(key, str):
        return ERR_KEY_TYPE
    if not key:
        return ERR_KEY_EMPTY
    if key.isascii():
        # Fast path (the common case): for ASCII, bytes == code points, no encoding needed.
        size = len(key)
    else:
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            # Lone surrogates: a Python str that has no UTF-8 form, so no byte order either.
            return ERR_KEY_ENCODING
    if size > MAX_KEY_SIZE:
        return key_too_large(size)
    return None


def check_value(value: object) -> str | None:
    # bytes only (not bytearray/memoryview): stored values must be immutable and hashable.
    if not isinstance(value, bytes):
        return ERR_VALUE_TYPE
    if len(value) > MAX_VALUE_SIZE:
        return value_too_large(len(value))
    return None


def _check_lease_id(lease_id: object) -> str | None:
    if lease_id is None:
        return None
    # bool is an int subclass; True as a lease id is certainly a bug.
    if not isinstance(lease_id, int) or isinstance(lease_id, bool):
        return ERR_LEASE_ID
    if not MIN_LEASE_ID <= lease_id <= MAX_LEASE_ID:
        return ERR_LEASE_ID
    return None


def _check_op(op: object) -> str | None:
    if isinstance(op, SetOp):
        return check_key(op.key) or check_value(op.value)
    if isinstance(op, DeleteOp):
        return check_key(op.key)
    return ERR_BATCH_OP


def _check_condition(cond: object) -> str | None:
    if isinstance(cond, ValueEquals):
        return check_key(cond.key) or check_value(cond.expected)
    if isinstance(cond, KeyExists | KeyNotExists):
        return check_key(cond.key)
    return ERR_CONDITION


def _validate_write(cmd: Write) -> str | None:
    return check_key(cmd.key) or check_value(cmd.value) or _check_lease_id(cmd.lease_id)


def _validate_delete(cmd: Delete) -> str | None:
    return check_key(cmd.key)


def _validate_cas(cmd: CompareAndSwap) -> str | None:
    # An oversized `expected` could never match a stored value; rejecting it keeps such requests
    # (and their megabytes) out of the log.
    err = check_key(cmd.key) or check_value(cmd.new_value)
    if err is None and cmd.expected is not None:
        err = check_value(cmd.expected)
    return err


def _validate_cad(cmd: CompareAndDelete) -> str | None:
    return check_key(cmd.key) or check_value(cmd.expected)


def _validate_batch(cmd: BatchWrite) -> str | None:
    ops: object = cmd.ops
    if not isinstance(ops, tuple | list):
        return ERR_BATCH_TYPE
    if len(ops) > MAX_BATCH_OPS:
        return batch_too_large(len(ops))
    for op in ops:
        err = _check_op(op)
        if err is not None:
            return err
    return None


def _validate_conditional_batch(cmd: ConditionalBatchWrite) -> str | None:
    conditions: object = cmd.conditions
    ops: object = cmd.ops
    if not isinstance(conditions, tuple | list) or not isinstance(ops, tuple | list):
        return ERR_BATCH_TYPE
    # Conditions count against the limit too: each costs a lookup inside the same atomic step.
    total = len(conditions) + len(ops)
    if total > MAX_BATCH_OPS:
        return batch_too_large(total)
    for cond in conditions:
        err = _check_condition(cond)
        if err is not None:
            return err
    for op in ops:
        err = _check_op(op)
        if err is not None:
            return err
    return None


def _validate_read(query: Read) -> str | None:
    return check_key(query.key)


def _validate_batch_read(query: BatchRead) -> str | None:
    keys: object = query.keys
    if not isinstance(keys, tuple | list):
        return ERR_BATCH_TYPE
    if len(keys) > MAX_BATCH_OPS:
        return batch_too_large(len(keys))
    for key in keys:
        err = check_key(key)
        if err is not None:
            return err
    return None


def _validate_scan(query: Scan) -> str | None:
    # Deliberately lenient on values: an empty prefix means "all keys", an over-long prefix simply
    # matches nothing, an out-of-range limit is clamped. Only types are checked, because a wrong
    # type would make the ordered lookup raise.
    if not isinstance(query.prefix, str):
        return ERR_PREFIX_TYPE
    limit: object = query.limit
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        return ERR_LIMIT_TYPE
    if query.continuation_token is not None and not isinstance(query.continuation_token, str):
        return ERR_TOKEN_TYPE
    return None


def _check_lease_ttl(ttl: object) -> str | None:
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_LEASE_TTL_SECONDS:
        return ERR_LEASE_TTL
    return None


def _check_now(now_ms: object) -> str | None:
    if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
        return ERR_NOW
    return None


def _check_required_lease_id(lease_id: object) -> str | None:
    return ERR_LEASE_ID if lease_id is None else _check_lease_id(lease_id)


def _validate_lease_grant(cmd: LeaseGrant) -> str | None:
    return _check_lease_ttl(cmd.ttl_seconds) or _check_lease_id(cmd.lease_id) or _check_now(cmd.now_ms)


def _validate_lease_revoke(cmd: LeaseRevoke) -> str | None:
    return _check_required_lease_id(cmd.lease_id)


def _validate_lease_keepalive(cmd: LeaseKeepalive) -> str | None:
    return _check_required_lease_id(cmd.lease_id) or _check_now(cmd.now_ms)


def _validate_lease_revoke_expired(cmd: LeaseRevokeExpired) -> str | None:
    ids: object = cmd.lease_ids
    if not isinstance(ids, tuple | list):
        return ERR_BATCH_TYPE
    if len(ids) > MAX_EXPIRED_PER_COMMAND:
        return f"at most {MAX_EXPIRED_PER_COMMAND} leases per expiry command (got {len(ids)})"
    for lease_id in ids:
        err = _check_required_lease_id(lease_id)
        if err is not None:
            return err
    return _check_now(cmd.now_ms)


def _validate_write_with_lease(cmd: WriteWithLease) -> str | None:
    return (
        check_key(cmd.key)
        or check_value(cmd.value)
        or _check_required_lease_id(cmd.lease_id)
        or _check_now(cmd.now_ms)
    )


# Dispatch by exact type: O(1) and open to extension (lease and coordination commands register
# here later) without growing an if-chain.
_VALIDATORS: dict[type[Any], Callable[[Any], str | None]] = {
    Write: _validate_write,
    Delete: _validate_delete,
    CompareAndSwap: _validate_cas,
    CompareAndDelete: _validate_cad,
    BatchWrite: _validate_batch,
    ConditionalBatchWrite: _validate_conditional_batch,
    Read: _validate_read,
    BatchRead: _validate_batch_read,
    Scan: _validate_scan,
    # Leases
    LeaseGrant: _validate_lease_grant,
    LeaseRevoke: _validate_lease_revoke,
    LeaseKeepalive: _validate_lease_keepalive,
    LeaseRevokeExpired: _validate_lease_revoke_expired,
    WriteWithLease: _validate_write_with_lease,
}


def validate(command: object) -> str | None:
    """The first error of a KV command or query, or None if it may be proposed / served.

    Raises `TypeError` if `command` is not a KV command or query type.
    """
    validator = _VALIDATORS.get(type(command))
    if validator is None:
        raise TypeError(f"not a KV command or query: {type(command).__name__}")
    return validator(command)


__all__ = [
    "ERR_KEY_EMPTY",
    "ERR_LEASE_ID",
    "ERR_LEASE_TTL",
    "batch_too_large",
    "check_key",
    "check_value",
    "key_too_large",
    "validate",
    "value_too_large",
]
