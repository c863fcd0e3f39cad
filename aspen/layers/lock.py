"""Distributed locks with fencing tokens, and lock sets, stored as JSON `{holder_id, fencing_token,
acquired_at_ms, ttl_ms, deadline_ms}` in `__coord:lock:<key>`.

Invariants:
- Fencing tokens strictly increase per key, across release and expiry: the first holder gets 1,
  every later acquisition gets the stored token + 1. Release does not delete the record; it leaves
  the *released* form `{holder_id: "", fencing_token: <same>, ttl_ms: 0, deadline_ms: 0}`, so the
  counter survives. Only `acquire` ever changes a token.
- At most one live holder per key. A record is free iff `deadline_ms == 0` (released) or
  `now_ms > deadline_ms` (expired), with `now_ms` the command's time (the leader's clock): every
  replica decides expiry identically. Clocks may go backwards across a leader change; that can only
  keep a lock held a little longer, never hand it to two holders in one log order.
- Not re-entrant: acquiring a key you hold live fails like any other held lock.
- Release and renew need the holder *and* its token. Releasing a lock whose release already
  happened (same token, released form) succeeds again: a retried release is harmless. Renewing
  needs the lock live; it keeps the token and moves the deadline to `now_ms + ttl_ms`.
- A lock set is up to 16 distinct keys handled in one command: all members are acquired (or
  released, or renewed) or none is. Members are ordinary locks, so single-key release works on them.
- Failures write nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.kv.records import parse_record
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key

PREFIX: Final = "__coord:lock:"
U64_MAX: Final = 2**64 - 1
#: Longest lock TTL (the original Aspen's limit): a crashed holder blocks others at most an hour.
MAX_TTL_MS: Final = 3_600_000
#: Longest blocking wait of one acquire (the original Aspen's limit).
MAX_WAIT_MS: Final = 300_000
MAX_HOLDER_BYTES: Final = 256
MAX_SET_MEMBERS: Final = 16
SET_BLOCKED: Final = "lock set blocked"


def storage_key(key: str) -> str:
    return PREFIX + key


def check_holder(holder_id: str) -> str | None:
    if not holder_id:
        return "holder id cannot be empty"
    if len(holder_id.encode("utf-8", "surrogatepass")) > MAX_HOLDER_BYTES:
        return f"holder id exceeds {MAX_HOLDER_BYTES} bytes"
    return None


def check_ttl(ttl_ms: int) -> str | None:
    return None if 1 <= ttl_ms <= MAX_TTL_MS else f"ttl_ms must be between 1 and {MAX_TTL_MS}"


def check_wait(timeout_ms: int) -> str | None:
    return None if 1 <= timeout_ms <= MAX_WAIT_MS else f"timeout_ms must be between 1 and {MAX_WAIT_MS}"


def check_token(token: int) -> str | None:
    return None if 0 <= token <= U64_MAX else f"fencing token must be between 0 and {U64_MAX}"


def _check_set(keys: tuple[str, ...]) -> str | None:
    if not keys:
        return "lock set needs at least one key"
    if len(keys) > MAX_SET_MEMBERS:
        return f"lock set has {len(keys)} keys, more than {MAX_SET_MEMBERS}"
    if len(set(keys)) != len(keys):
        return "lock set keys must be distinct"
    return next((e for e in (check_user_key(PREFIX, k) for k in keys) if e), None)


# -------------------------------------------------------------------------------------- the record --
@dataclass(frozen=True, slots=True)
class LockRecord:
    holder_id: str
    fencing_token: int
    acquired_at_ms: int
    ttl_ms: int
    deadline_ms: int

    def is_free(self, now_ms: int) -> bool:
        return self.deadline_ms == 0 or now_ms > self.deadline_ms

    def encode(self) -> bytes:
        return json.dumps(
            {
                "holder_id": self.holder_id,
                "fencing_token": self.fencing_token,
                "acquired_at_ms": self.acquired_at_ms,
                "ttl_ms": self.ttl_ms,
                "deadline_ms": self.deadline_ms,
            },
            separators=(",", ":"),
        ).encode()


def read_record(reader: KvReader, key: str) -> LockRecord | None:
    """The stored lock of `key` (None if never acquired); `Rejected` if the value is no lock record."""
    raw = reader.get(storage_key(key))
    if raw is None:
        return None
    doc = parse_record(storage_key(key), raw, "a lock record")
    try:
        record = LockRecord(
            doc["holder_id"], doc["fencing_token"], doc["acquired_at_ms"], doc["ttl_ms"], doc["deadline_ms"]
        )
    except KeyError:  # any JSON object an older node or a restored backup left
        raise Rejected(f"corrupted data in key '{storage_key(key)}': not a lock record") from None
    ints = (record.fencing_token, record.acquired_at_ms, record.ttl_ms, record.deadline_ms)
    if type(record.holder_id) is not str or any(type(n) is not int or not 0 <= n <= U64_MAX for n in ints):
        raise Rejected(f"corrupted data in key '{storage_key(key)}': not a lock record")
    return record


def _held_error(record: LockRecord) -> str:
    return f"lock held by '{record.holder_id}' until {record.deadline_ms}ms"


def _mismatch(record: LockRecord, holder_id: str, token: int) -> str:
    if record.deadline_ms == 0:
        return f"lock is free (token {record.fencing_token}), not held by '{holder_id}' with token {token}"
    return (
        f"lock held by '{record.holder_id}' with token {record.fencing_token}, "
        f"not '{holder_id}' with token {token}"
    )


# -------------------------------------------------------------------------------------- operations --
@dataclass(frozen=True, slots=True)
class LockTryAcquire:
    key: str
    holder_id: str
    ttl_ms: int

    def check(self) -> str | None:
        return check_user_key(PREFIX, self.key) or check_holder(self.holder_id) or check_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class LockRelease:
    key: str
    holder_id: str
    fencing_token: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.key)
            or check_holder(self.holder_id)
            or check_token(self.fencing_token)
        )


@dataclass(frozen=True, slots=True)
class LockRenew:
    key: str
    holder_id: str
    fencing_token: int
    ttl_ms: int

    def check(self) -> str | None:
        return (
            check_user_key(PREFIX, self.key)
            or check_holder(self.holder_id)
            or check_token(self.fencing_token)
            or check_ttl(self.ttl_ms)
        )


@dataclass(frozen=True, slots=True)
class LockSetTryAcquire:
    keys: tuple[str, ...]
    holder_id: str
    ttl_ms: int

    def check(self) -> str | None:
        return _check_set(self.keys) or check_holder(self.holder_id) or check_ttl(self.ttl_ms)


@dataclass(frozen=True, slots=True)
class LockSetRelease:
    keys: tuple[str, ...]
    holder_id: str
    #: One token per key, in the order of `keys`.
    fencing_tokens: tuple[int, ...]

    def check(self) -> str | None:
        return _check_set(self.keys) or check_holder(self.holder_id) or _check_tokens(self)


@dataclass(frozen=True, slots=True)
class LockSetRenew:
    keys: tuple[str, ...]
    holder_id: str
    fencing_tokens: tuple[int, ...]
    ttl_ms: int

    def check(self) -> str | None:
        return (
            _check_set(self.keys)
            or check_holder(self.holder_id)
            or _check_tokens(self)
            or check_ttl(self.ttl_ms)
        )


def _check_tokens(op: LockSetRelease | LockSetRenew) -> str | None:
    if len(op.fencing_tokens) != len(op.keys):
        return f"lock set has {len(op.keys)} keys but {len(op.fencing_tokens)} fencing tokens"
    return next((e for e in map(check_token, op.fencing_tokens) if e), None)


LockOp = LockTryAcquire | LockRelease | LockRenew | LockSetTryAcquire | LockSetRelease | LockSetRenew


@dataclass(frozen=True, slots=True)
class LockResult:
    """`fencing_token` and `deadline_ms` describe the caller's lock after success; on a "held"
    failure `holder_id`/`deadline_ms` name the current holder (its token is never revealed)."""

    is_success: bool
    fencing_token: int | None = None
    holder_id: str | None = None
    deadline_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LockSetResult:
    """`fencing_tokens` is aligned with the request's keys. When a member blocks the set,
    `blocked_member`/`blocked_holder` say which key and who holds it."""

    is_success: bool
    fencing_tokens: tuple[int, ...] | None = None
    deadline_ms: int | None = None
    blocked_member: str | None = None
    blocked_holder: str | None = None
    error: str | None = None


# ---------------------------------------------------------------------------------------- applying --
def _try_acquire(txn: KvTxn, key: str, holder_id: str, ttl_ms: int, now_ms: int) -> LockResult:
    record = read_record(txn, key)
    if record is not None and not record.is_free(now_ms):
        return LockResult(False, None, record.holder_id, record.deadline_ms, _held_error(record))
    previous = 0 if record is None else record.fencing_token
    if previous >= U64_MAX:
        raise Rejected(f"fencing tokens of lock '{key}' are exhausted")
    new = LockRecord(holder_id, previous + 1, now_ms, ttl_ms, now_ms + ttl_ms)
    txn.put(storage_key(key), new.encode())
    return LockResult(True, new.fencing_token, holder_id, new.deadline_ms)


def _release(txn: KvTxn, key: str, holder_id: str, token: int) -> LockResult:
    record = read_record(txn, key)
    if record is None:
        return LockResult(True)
    if record.fencing_token == token and record.deadline_ms == 0 and record.holder_id == "":
        return LockResult(True, token, holder_id, 0)  # already released with this token
    if record.holder_id != holder_id or record.fencing_token != token:
        error = _mismatch(record, holder_id, token)
        return LockResult(False, None, record.holder_id, record.deadline_ms, error)
    txn.put(storage_key(key), LockRecord("", token, record.acquired_at_ms, 0, 0).encode())
    return LockResult(True, token, holder_id, 0)


def _renew(txn: KvTxn, key: str, holder_id: str, token: int, ttl_ms: int, now_ms: int) -> LockResult:
    record = read_record(txn, key)
    if record is None:
        return LockResult(False, error="lock not found")
    if record.fencing_token == token and record.is_free(now_ms):
        return LockResult(False, error="lock released" if record.deadline_ms == 0 else "lock expired")
    if record.holder_id != holder_id or record.fencing_token != token:
        error = _mismatch(record, holder_id, token)
        return LockResult(False, None, record.holder_id, record.deadline_ms, error)
    new = LockRecord(holder_id, token, now_ms, ttl_ms, now_ms + ttl_ms)
    txn.put(storage_key(key), new.encode())
    return LockResult(True, token, holder_id, new.deadline_ms)


def _set_failure(key: str, res: LockResult) -> LockSetResult:
    return LockSetResult(False, None, None, key, res.holder_id, f"{SET_BLOCKED}: {key}: {res.error}")


SetOp = LockSetTryAcquire | LockSetRelease | LockSetRenew


def _set_acquire(txn: KvTxn, op: LockSetTryAcquire, now_ms: int) -> LockSetResult:
    tokens: list[int] = []
    for key in op.keys:
        res = _try_acquire(txn, key, op.holder_id, op.ttl_ms, now_ms)
        if not res.is_success or res.fencing_token is None:
            txn.clear()  # all or nothing (see `_apply_set`)
            return _set_failure(key, res)
        tokens.append(res.fencing_token)
    return LockSetResult(True, tuple(tokens), now_ms + op.ttl_ms)


def _apply_set(txn: KvTxn, op: SetOp, now_ms: int) -> LockSetResult:
    if isinstance(op, LockSetTryAcquire):
        return _set_acquire(txn, op, now_ms)
    tokens: list[int] = []
    deadline: int | None = None
    for i, key in enumerate(op.keys):
        if isinstance(op, LockSetRelease):
            res = _release(txn, key, op.holder_id, op.fencing_tokens[i])
        else:
            res = _renew(txn, key, op.holder_id, op.fencing_tokens[i], op.ttl_ms, now_ms)
        if not res.is_success:
            # A domain failure returns normally (the framework clears only on `Rejected`): drop the
            # members already written so the set stays all-or-nothing.
            txn.clear()
            return _set_failure(key, res)
        # A release of a never-acquired member succeeds without a token: report the caller's.
        tokens.append(op.fencing_tokens[i] if res.fencing_token is None else res.fencing_token)
        deadline = res.deadline_ms
    return LockSetResult(True, tuple(tokens), deadline)


def apply(txn: KvTxn, op: LockOp, now_ms: int) -> LockResult | LockSetResult:
    if isinstance(op, LockTryAcquire):
        return _try_acquire(txn, op.key, op.holder_id, op.ttl_ms, now_ms)
    if isinstance(op, LockRelease):
        return _release(txn, op.key, op.holder_id, op.fencing_token)
    if isinstance(op, LockRenew):
        return _renew(txn, op.key, op.holder_id, op.fencing_token, op.ttl_ms, now_ms)
    return _apply_set(txn, op, now_ms)


def rejected(message: str) -> LockResult:
    # Lock-set callers turn this into a LockSetResult (the node knows which op it proposed).
    return LockResult(is_success=False, error=message)


def peek(reader: KvReader, key: str) -> LockRecord | None:
    """The stored record, or None if absent or unreadable; a hint for waiters, never a decision."""
    try:
        return read_record(reader, key)
    except Rejected:
        return None


def free_at(reader: KvReader, keys: Sequence[str], now_ms: int) -> int:
    """When a try-acquire of `keys` can succeed if nobody else acquires or renews them: `now_ms` if it
    can now, else the first ms after the last live holder's deadline (expiry is `now > deadline`).
    An unreadable record also answers `now_ms`: the try itself reports it. Pure: a waiter's check."""
    at = now_ms
    for key in keys:
        try:
            record = read_record(reader, key)
        except Rejected:
            return now_ms
        if record is not None and not record.is_free(now_ms):
            at = max(at, record.deadline_ms + 1)
    return at


def set_blocked(reader: KvReader, keys: Sequence[str], now_ms: int) -> LockSetResult | None:
    """The failure a lock-set try-acquire of `keys` would answer at `now_ms` because a live holder
    blocks it (the first such key, as apply finds it), or None. Pure: nothing is written."""
    for key in keys:
        record = peek(reader, key)
        if record is not None and not record.is_free(now_ms):
            held = LockResult(False, None, record.holder_id, record.deadline_ms, _held_error(record))
            return _set_failure(key, held)
    return None


def timed_out(key: str) -> str:
    return f"operation timed out: lock acquisition for '{storage_key(key)}'"


def acquire_blocked(reader: KvReader, now_ms: int, op: LockTryAcquire) -> Blocked | None:
    """Blocked while a live holder (any, the caller too: locks are not re-entrant) has the lock."""
    record = peek(reader, op.key)
    if record is None or record.is_free(now_ms):
        return None
    out = LockResult(False, None, record.holder_id, record.deadline_ms, timed_out(op.key))
    return Blocked((storage_key(op.key),), out, record.deadline_ms + 1)


def set_acquire_blocked(reader: KvReader, now_ms: int, op: LockSetTryAcquire) -> Blocked | None:
    """Blocked while a live holder has a member; the timed-out answer names the blocking member."""
    failure = set_blocked(reader, op.keys, now_ms)
    if failure is None:
        return None
    out = dataclasses.replace(failure, error=f"operation timed out: lock set acquisition ({failure.error})")
    return Blocked(tuple(map(storage_key, op.keys)), out, free_at(reader, op.keys, now_ms))


LAYER: Final[Layer[LockOp, LockResult | LockSetResult]] = Layer(
    name="lock",
    ops=(LockTryAcquire, LockRelease, LockRenew, LockSetTryAcquire, LockSetRelease, LockSetRenew),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    waits={
        "LockTryAcquire": Wait(acquire_blocked, check_wait),
        "LockSetTryAcquire": Wait(set_acquire_blocked, check_wait),
    },
)

__all__ = [
    "LAYER",
    "MAX_SET_MEMBERS",
    "MAX_TTL_MS",
    "MAX_WAIT_MS",
    "PREFIX",
    "LockOp",
    "LockRecord",
    "LockRelease",
    "LockRenew",
    "LockResult",
    "LockSetRelease",
    "LockSetRenew",
    "LockSetResult",
    "LockSetTryAcquire",
    "LockTryAcquire",
    "check_wait",
    "free_at",
    "peek",
    "read_record",
    "set_blocked",
    "storage_key",
]
