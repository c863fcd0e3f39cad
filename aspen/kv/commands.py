"""Commands, queries and results of the KV state machine.

Write commands go through the Raft log and are applied by `KvStateMachine.apply`; queries (`Read`,
`Scan`, `BatchRead`) are served locally after a ReadIndex barrier and never enter the log.

Invariants:
- Every type here is an immutable value (frozen, slotted dataclass); sequences are tuples, so a
  command can be hashed, compared and shared between the proposer, the log and the applier.
- Keys are `str` and values are `bytes`. A command object may still carry out-of-range or ill-typed
  fields (it may come from a client or an old log entry); `aspen.kv.validation.validate` decides
  whether it is acceptable, and `apply` re-checks, so constructing a command never raises.
- A failed command never changes state; its result carries `error` (validation) or the conflict
  details (compare-and-swap and conditional batches), never both.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------------
# Batch building blocks


@dataclass(frozen=True, slots=True)
class SetOp:
    """Set `key` to `value` inside a batch (clears any lease on the key)."""

    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete `key` inside a batch; deleting a missing key is a no-op, not a failure."""

    key: str


BatchOp = SetOp | DeleteOp


@dataclass(frozen=True, slots=True)
class ValueEquals:
    """Holds iff `key` exists and its value is exactly `expected`."""

    key: str
    expected: bytes


@dataclass(frozen=True, slots=True)
class KeyExists:
    key: str


@dataclass(frozen=True, slots=True)
class KeyNotExists:
    key: str


Condition = ValueEquals | KeyExists | KeyNotExists

# --------------------------------------------------------------------------------------------------
# Write commands (replicated through the log)


@dataclass(frozen=True, slots=True)
class Write:
    """Create or overwrite `key`. The entry's lease becomes `lease_id`, which must exist (None
    detaches it). The node uses `WriteWithLease` to attach, which also checks expiry."""

    key: str
    value: bytes
    lease_id: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


@dataclass(frozen=True, slots=True)
class CompareAndSwap:
    """Set `key` to `new_value` iff its current value is `expected` (None: iff the key is absent)."""

    key: str
    expected: bytes | None
    new_value: bytes


@dataclass(frozen=True, slots=True)
class CompareAndDelete:
    """Delete `key` iff it exists with exactly the value `expected`."""

    key: str
    expected: bytes


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """Apply all `ops` in order, atomically, at one revision (all or nothing)."""

    ops: tuple[BatchOp, ...]


@dataclass(frozen=True, slots=True)
class ConditionalBatchWrite:
    """Check `conditions` in order; iff all hold, apply `ops` as a `BatchWrite`, in the same step."""

    conditions: tuple[Condition, ...]
    ops: tuple[BatchOp, ...]


Command = Write | Delete | CompareAndSwap | CompareAndDelete | BatchWrite | ConditionalBatchWrite

# --------------------------------------------------------------------------------------------------
# Write results


@dataclass(frozen=True, slots=True)
class WriteResult:
    is_success: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    key: str
    #: False both when the key was absent and when the command was rejected (then `error` is set).
    was_deleted: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CasResult:
    """Result of `CompareAndSwap` and `CompareAndDelete`.

    On a conflict `is_success` is False, `error` is None and `actual_value` is the current value
    (None if the key is absent) so the client can retry without another read. On success and on a
    validation error `actual_value` is None.
    """

    is_success: bool
    actual_value: bytes | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BatchWriteResult:
    is_success: bool
    #: len(ops) on success, 0 on failure (None is never produced; kept for wire compatibility).
    operations_applied: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionalBatchWriteResult:
    is_success: bool
    conditions_met: bool
    operations_applied: int | None = None
    #: Index into `conditions` of the first condition that did not hold.
    failed_condition_index: int | None = None
    failed_condition_reason: str | None = None
    error: str | None = None


CommandResult = WriteResult | DeleteResult | CasResult | BatchWriteResult | ConditionalBatchWriteResult

# --------------------------------------------------------------------------------------------------
# Queries (served locally, never logged)


@dataclass(frozen=True, slots=True)
class Read:
    key: str


@dataclass(frozen=True, slots=True)
class ReadResult:
    value: bytes | None
    was_found: bool


@dataclass(frozen=True, slots=True)
class Scan:
    """Keys starting with `prefix`, ascending, one page at a time.

    `limit` None means `DEFAULT_SCAN_LIMIT`; larger values are clamped to `MAX_SCAN_RESULTS` and
    negative ones to 0. `continuation_token` is the last key of the previous page: the page starts
    strictly after it. A token that sorts before `prefix` is ignored (the scan starts at the prefix),
    since no matching key can lie between them anyway. With `include_internal` False, keys under a
    reserved prefix (`aspen.kv.records.RESERVED_PREFIXES`) are skipped as if absent; the node's edge
    asks for that for plain client scans, internal readers see everything.
    """

    prefix: str = ""
    limit: int | None = None
    continuation_token: str | None = None
    include_internal: bool = True


@dataclass(frozen=True, slots=True)
class ScanEntry:
    key: str
    value: bytes
    version: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    entries: tuple[ScanEntry, ...]
    count: int
    #: True iff at least one more matching key exists after the last returned entry.
    is_truncated: bool
    #: Pass as `Scan.continuation_token` to get the next page; None when not truncated.
    continuation_token: str | None = None


@dataclass(frozen=True, slots=True)
class BatchRead:
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchReadResult:
    #: One value per requested key, in request order; None for a missing key.
    values: tuple[bytes | None, ...]


Query = Read | Scan | BatchRead
QueryResult = ReadResult | ScanResult | BatchReadResult

__all__ = [
    "BatchOp",
    "BatchRead",
    "BatchReadResult",
    "BatchWrite",
    "BatchWriteResult",
    "CasResult",
    "Command",
    "CommandResult",
    "CompareAndDelete",
    "CompareAndSwap",
    "Condition",
    "ConditionalBatchWrite",
    "ConditionalBatchWriteResult",
    "Delete",
    "DeleteOp",
    "DeleteResult",
    "KeyExists",
    "KeyNotExists",
    "Query",
    "QueryResult",
    "Read",
    "ReadResult",
    "Scan",
    "ScanEntry",
    "ScanResult",
    "SetOp",
    "ValueEquals",
    "Write",
    "WriteResult",
]
