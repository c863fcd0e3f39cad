"""`KvStateMachine`: the replicated, ordered key-value map that committed log entries are applied to.

Invariants:
- Deterministic and pure: the state after `apply` depends only on the previous state, the log index
  and the command. No clock (time, when a future command needs it, travels inside the command), no
  randomness, no I/O, no iteration over unordered containers.
- `apply` never raises for a bad command: it re-validates (the log may hold entries proposed by a
  buggy or older node) and a rejected or conflicting command leaves the map untouched. It raises only
  for programming errors: `TypeError` for a non-command, `ValueError` for a log index that goes back.
- Every command is all-or-nothing: batches are validated completely before their first mutation,
  and after validation nothing can fail.
- Revisions are log indexes: all mutations made by one command carry that command's index. Several
  commands may share an index (one log entry holding a batch of commands), so indexes passed to
  `apply` must be non-decreasing, not strictly increasing.
- Keys are ordered by code point, which for valid (surrogate-free, enforced by validation) str is
  exactly the order of their UTF-8 bytes.
- `state_hash` covers the contents only (keys, entries and leases, not `applied_index`), so two
  replicas holding equal maps compare equal wherever they are in the log.
- Leases (see `aspen.kv.leases`): every row's `lease_id` names a lease of `_leases`. A key leaves its
  lease when it is deleted or rewritten without that lease (a plain write, CAS or batch set);
  revoking a lease deletes all its keys in the same step. Expiry is decided only by a command's
  `now_ms` (the leader's clock), and nothing expires without a command: replicas never expire
  leases on their own.

Storage note: the map holds plain tuples `(value, version, create_revision, mod_revision, lease_id)`
rather than `KvEntry` objects: constructing a frozen dataclass per key made restoring a large
snapshot seconds slower and slowed every write (docs/performance.md); `KvEntry` is built on the way
out.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any, Final, overload

import blake3
import msgpack
from sortedcontainers import SortedDict

from aspen.kv.commands import (
    BatchOp,
    BatchRead,
    BatchReadResult,
    BatchWrite,
    BatchWriteResult,
    CasResult,
    Command,
    CommandResult,
    CompareAndDelete,
    CompareAndSwap,
    Condition,
    ConditionalBatchWrite,
    ConditionalBatchWriteResult,
    Delete,
    DeleteResult,
    KeyExists,
    Query,
    QueryResult,
    Read,
    ReadResult,
    Scan,
    ScanEntry,
    ScanResult,
    SetOp,
    ValueEquals,
    Write,
    WriteResult,
)
from aspen.kv.entry import KvEntry
from aspen.kv.layer import KvTxn, LayerApplier, LayerCommand, LayerRejected
from aspen.kv.lease_commands import (
    ERR_LEASE_EXPIRED,
    ERR_LEASE_IDS_EXHAUSTED,
    ERR_LEASE_NOT_FOUND,
    LeaseCommand,
    LeaseCommandResult,
    LeaseGrant,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepalive,
    LeaseKeepaliveResult,
    LeaseRevoke,
    LeaseRevokeExpired,
    LeaseRevokeExpiredResult,
    LeaseRevokeResult,
    WriteWithLease,
    lease_exists,
    lease_expired,
    lease_not_found,
)
from aspen.kv.leases import LeaseTable
from aspen.kv.limits import DEFAULT_SCAN_LIMIT, MAX_SCAN_RESULTS
from aspen.kv.records import RESERVED_PREFIXES
from aspen.kv.validation import validate

#: Reason reported for the first condition of a conditional batch that does not hold.
CONDITION_NOT_MET: Final = "condition not met"

#: Version tag of the snapshot layout; bump on any change to `_columns` or the lease table.
#: 1: rows only. 2: rows + lease table (format 1 still restores: it predates leases, see restore).
SNAPSHOT_FORMAT: Final = 2
_SNAPSHOT_FORMAT_ROWS_ONLY: Final = 1
_STATE_HASH_DOMAIN: Final = b"aspen.kv.state.v1\x00"

# Row layout: (value, version, create_revision, mod_revision, lease_id).
_Row = tuple[bytes, int, int, int, int | None]
_VALUE: Final = 0
_VERSION: Final = 1
_CREATE: Final = 2
_MOD: Final = 3
_LEASE: Final = 4


class KvStateMachine:
    """The KV map plus the index of the last applied log entry."""

    __slots__ = ("_applied_index", "_data", "_layers", "_leases", "on_change")

    def __init__(self, layers: Mapping[str, LayerApplier] | None = None) -> None:
        # SortedDict[str, _Row]: dict lookups for point access, an ordered key list for scans.
        self._data: Any = SortedDict()
        self._applied_index = 0
        #: Coordination layers by name (see aspen.kv.layer); injected so kv never imports layers.
        self._layers: Mapping[str, LayerApplier] = layers or {}
        self._leases = LeaseTable()
        #: Told the key of every applied put or delete (None: the whole state was replaced), so the
        #: node can wake what waits on a key instead of polling it. Set only while something waits:
        #: the apply path pays one attribute test otherwise. It must not touch the machine.
        self.on_change: Callable[[str | None], None] | None = None

    # ----------------------------------------------------------------------------------------------
    # Introspection

    @property
    def applied_index(self) -> int:
        return self._applied_index

    def __len__(self) -> int:
        n: int = len(self._data)
        return n

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get_entry(self, key: str) -> KvEntry | None:
        row: _Row | None = self._data.get(key)
        return None if row is None else KvEntry(*row)

    def items(self, prefix: str = "", after: str | None = None) -> Iterator[tuple[str, KvEntry]]:
        """All (key, entry) pairs whose key starts with `prefix` (and sorts strictly after `after`, if
        given), ascending. Do not mutate meanwhile."""
        data = self._data
        if after is not None and after >= prefix:
            keys = data.irange(minimum=after, inclusive=(False, True))
        else:
            keys = data.irange(minimum=prefix)
        for key in keys:
            if not key.startswith(prefix):
                return
            yield key, KvEntry(*data[key])

    # ----------------------------------------------------------------------------------------------
    # Applying log entries

    @overload
    def apply(self, index: int, command: Write) -> WriteResult: ...
    @overload
    def apply(self, index: int, command: Delete) -> DeleteResult: ...
    @overload
    def apply(self, index: int, command: CompareAndSwap) -> CasResult: ...
    @overload
    def apply(self, index: int, command: CompareAndDelete) -> CasResult: ...
    @overload
    def apply(self, index: int, command: BatchWrite) -> BatchWriteResult: ...
    @overload
    def apply(self, index: int, command: ConditionalBatchWrite) -> ConditionalBatchWriteResult: ...
    @overload
    def apply(self, index: int, command: LeaseGrant) -> LeaseGrantResult: ...
    @overload
    def apply(self, index: int, command: LeaseRevoke) -> LeaseRevokeResult: ...
    @overload
    def apply(self, index: int, command: LeaseKeepalive) -> LeaseKeepaliveResult: ...
    @overload
    def apply(self, index: int, command: LeaseRevokeExpired) -> LeaseRevokeExpiredResult: ...
    @overload
    def apply(self, index: int, command: WriteWithLease) -> WriteResult: ...
    @overload
    def apply(self, index: int, command: Command | LeaseCommand) -> CommandResult | LeaseCommandResult: ...
    @overload
    def apply(self, index: int, command: LayerCommand) -> Any: ...

    def apply(self, index: int, command: Command | LeaseCommand | LayerCommand) -> Any:
        """Apply the committed `command` found at log `index` and return its result."""
        handler = _APPLIERS.get(type(command))
        if handler is None:
            raise TypeError(f"not a KV command: {type(command).__name__}")
        self._check_index(index)
        result = handler(self, index, command)
        self._applied_index = index
        return result

    def advance(self, index: int) -> None:
        """Record that log entries up to `index` are applied without a KV command (e.g. an empty
        leader entry or a membership change), so `applied_index` and snapshots stay accurate."""
        self._check_index(index)
        self._applied_index = index

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"log index must be an int, not {type(index).__name__}")
        # Going back would re-apply entries and corrupt versions: a bug in the driver, so fail loud.
        if index < self._applied_index:
            raise ValueError(f"log index {index} is before applied index {self._applied_index}")

    def _put(self, index: int, key: str, value: bytes, lease_id: int | None) -> None:
        """Create or overwrite `key`; the row's lease becomes `lease_id` (which must exist)."""
        data = self._data
        old: _Row | None = data.get(key)
        if old is None:
            data[key] = (value, 1, index, index, lease_id)
        else:
            data[key] = (value, old[_VERSION] + 1, old[_CREATE], index, lease_id)
            if old[_LEASE] is not None and old[_LEASE] != lease_id:
                self._leases.detach(key, old[_LEASE])
        if lease_id is not None:
            self._leases.attach(key, lease_id)
        if self.on_change is not None:
            self.on_change(key)

    def _remove(self, key: str) -> bool:
        """Delete `key` (detaching it from its lease); False if it was absent."""
        row: _Row | None = self._data.pop(key, None)
        if row is None:
            return False
        if row[_LEASE] is not None:
            self._leases.detach(key, row[_LEASE])
        if self.on_change is not None:
            self.on_change(key)
        return True

    def _apply_ops(self, index: int, ops: tuple[BatchOp, ...]) -> None:
        # Ops run in order, so later ops on the same key see earlier ones (set then delete deletes;
        # each set bumps the version). Batch sets carry no lease.
        for op in ops:
            if isinstance(op, SetOp):
                self._put(index, op.key, op.value, None)
            else:
                self._remove(op.key)

    def _holds(self, cond: Condition) -> bool:
        if isinstance(cond, ValueEquals):
            row: _Row | None = self._data.get(cond.key)
            return row is not None and row[_VALUE] == cond.expected
        present = cond.key in self._data
        return present if isinstance(cond, KeyExists) else not present

    def _apply_write(self, index: int, cmd: Write) -> WriteResult:
        err = validate(cmd)
        if err is None and cmd.lease_id is not None and cmd.lease_id not in self._leases:
            # No time in a plain Write, so only existence is checked; the node attaches keys to
            # leases with `WriteWithLease`, which also refuses an expired lease.
            err = lease_not_found(cmd.lease_id)
        if err is not None:
            return WriteResult(is_success=False, error=err)
        self._put(index, cmd.key, cmd.value, cmd.lease_id)
        return WriteResult(is_success=True)

    def _apply_delete(self, index: int, cmd: Delete) -> DeleteResult:
        err = validate(cmd)
        if err is not None:
            return DeleteResult(key=cmd.key, was_deleted=False, error=err)
        was_deleted = self._remove(cmd.key)
        return DeleteResult(key=cmd.key, was_deleted=was_deleted)

    def _apply_cas(self, index: int, cmd: CompareAndSwap) -> CasResult:
        err = validate(cmd)
        if err is not None:
            return CasResult(is_success=False, error=err)
        row: _Row | None = self._data.get(cmd.key)
        current = None if row is None else row[_VALUE]
        matches = row is None if cmd.expected is None else current == cmd.expected
        if not matches:
            return CasResult(is_success=False, actual_value=current)
        # A CAS replaces the value wholesale; it has no lease parameter, so the key leaves its lease.
        self._put(index, cmd.key, cmd.new_value, None)
        return CasResult(is_success=True)

    def _apply_cad(self, index: int, cmd: CompareAndDelete) -> CasResult:
        err = validate(cmd)
        if err is not None:
            return CasResult(is_success=False, error=err)
        row: _Row | None = self._data.get(cmd.key)
        if row is None or row[_VALUE] != cmd.expected:
            return CasResult(is_success=False, actual_value=None if row is None else row[_VALUE])
        self._remove(cmd.key)
        return CasResult(is_success=True)

    def _apply_batch(self, index: int, cmd: BatchWrite) -> BatchWriteResult:
        err = validate(cmd)
        if err is not None:
            return BatchWriteResult(is_success=False, operations_applied=0, error=err)
        self._apply_ops(index, cmd.ops)
        return BatchWriteResult(is_success=True, operations_applied=len(cmd.ops))

    def _apply_conditional_batch(self, index: int, cmd: ConditionalBatchWrite) -> ConditionalBatchWriteResult:
        err = validate(cmd)
        if err is not None:
            return ConditionalBatchWriteResult(
                is_success=False, conditions_met=False, operations_applied=0, error=err
            )
        # Conditions and writes happen in this single apply step, so nothing can slip in between.
        for i, cond in enumerate(cmd.conditions):
            if not self._holds(cond):
                return ConditionalBatchWriteResult(
                    is_success=False,
                    conditions_met=False,
                    operations_applied=0,
                    failed_condition_index=i,
                    failed_condition_reason=CONDITION_NOT_MET,
                )
        self._apply_ops(index, cmd.ops)
        return ConditionalBatchWriteResult(
            is_success=True, conditions_met=True, operations_applied=len(cmd.ops)
        )

    def _apply_layer(self, index: int, cmd: LayerCommand) -> Any:
        applier = self._layers.get(cmd.layer)
        if applier is None:
            return LayerRejected(error=f"unknown coordination layer {cmd.layer!r}")
        txn = KvTxn(self)
        try:
            result = applier(txn, cmd)
        except Exception as err:
            # The aspen.layers framework never raises; an applier that does must not stop the node.
            # Its buffered writes are dropped, so the command changes nothing, on every replica.
            return LayerRejected(error=f"{cmd.layer} {cmd.op!r} failed ({type(err).__name__})")
        # Commit only after the layer returned: a rejected operation has left nothing behind.
        for key, value in txn.writes():
            if value is None:
                self._remove(key)  # detaches the key from its lease, like any delete
            else:
                self._put(index, key, value, None)
        return result

    # ----------------------------------------------------------------------------------------------
    # Leases

    def _apply_lease_grant(self, index: int, cmd: LeaseGrant) -> LeaseGrantResult:
        err = validate(cmd)
        if err is not None:
            return LeaseGrantResult(is_success=False, error=err)
        leases = self._leases
        lease_id = cmd.lease_id if cmd.lease_id is not None else leases.choose_id()
        if lease_id is None:
            return LeaseGrantResult(is_success=False, error=ERR_LEASE_IDS_EXHAUSTED)
        if lease_id in leases:
            return LeaseGrantResult(is_success=False, error=lease_exists(lease_id))
        leases.grant(lease_id, cmd.ttl_seconds, cmd.now_ms + cmd.ttl_seconds * 1000)
        return LeaseGrantResult(is_success=True, lease_id=lease_id, ttl_seconds=cmd.ttl_seconds)

    def _revoke(self, lease_id: int) -> int:
        keys = self._leases.remove(lease_id)
        data = self._data
        for key in keys:
            del data[key]
            if self.on_change is not None:
                self.on_change(key)
        return len(keys)

    def _apply_lease_revoke(self, index: int, cmd: LeaseRevoke) -> LeaseRevokeResult:
        err = validate(cmd)
        if err is not None:
            return LeaseRevokeResult(is_success=False, error=err)
        if cmd.lease_id not in self._leases:
            return LeaseRevokeResult(is_success=True, keys_deleted=0)
        return LeaseRevokeResult(is_success=True, keys_deleted=self._revoke(cmd.lease_id))

    def _apply_lease_keepalive(self, index: int, cmd: LeaseKeepalive) -> LeaseKeepaliveResult:
        err = validate(cmd)
        if err is not None:
            return LeaseKeepaliveResult(is_success=False, error=err)
        info = self._leases.info(cmd.lease_id)
        if info is None:
            return LeaseKeepaliveResult(is_success=False, error=ERR_LEASE_NOT_FOUND)
        if info.is_expired(cmd.now_ms):
            # Too late: the leader's sweeper will revoke it; reviving it would race that revocation.
            return LeaseKeepaliveResult(is_success=False, error=ERR_LEASE_EXPIRED)
        self._leases.renew(cmd.lease_id, cmd.now_ms + info.ttl_seconds * 1000)
        return LeaseKeepaliveResult(is_success=True, lease_id=cmd.lease_id, ttl_seconds=info.ttl_seconds)

    def _apply_lease_revoke_expired(self, index: int, cmd: LeaseRevokeExpired) -> LeaseRevokeExpiredResult:
        if validate(cmd) is not None:
            return LeaseRevokeExpiredResult(revoked=(), keys_deleted=0)
        revoked: list[int] = []
        keys_deleted = 0
        for lease_id in cmd.lease_ids:
            info = self._leases.info(lease_id)
            # Re-checked here, at this entry's place in the log: a keepalive ordered before it wins.
            if info is not None and info.is_expired(cmd.now_ms):
                keys_deleted += self._revoke(lease_id)
                revoked.append(lease_id)
        return LeaseRevokeExpiredResult(revoked=tuple(revoked), keys_deleted=keys_deleted)

    def _apply_write_with_lease(self, index: int, cmd: WriteWithLease) -> WriteResult:
        err = validate(cmd)
        if err is None:
            info = self._leases.info(cmd.lease_id)
            if info is None:
                err = lease_not_found(cmd.lease_id)
            elif info.is_expired(cmd.now_ms):
                err = lease_expired(cmd.lease_id)
        if err is not None:
            return WriteResult(is_success=False, error=err)
        self._put(index, cmd.key, cmd.value, cmd.lease_id)
        return WriteResult(is_success=True)

    def lease(self, lease_id: int) -> LeaseInfo | None:
        """The stored lease (expired or not: the caller judges expiry with its own clock)."""
        return self._leases.info(lease_id)

    def leases(self) -> list[LeaseInfo]:
        """Every stored lease, by id (expired ones included until their revocation is applied)."""
        return self._leases.all()

    def lease_keys(self, lease_id: int) -> list[str]:
        """Keys attached to `lease_id`, sorted."""
        return self._leases.keys_of(lease_id)

    def expired_leases(self, now_ms: int, limit: int) -> list[int]:
        """Up to `limit` ids of leases expired at `now_ms`, earliest first (for the leader's sweeper)."""
        return self._leases.expired(now_ms, limit)

    # ----------------------------------------------------------------------------------------------
    # Queries (local reads; linearizability is the caller's job, via ReadIndex)

    def read(self, query: Read) -> ReadResult:
        row: _Row | None = self._data.get(query.key)
        if row is None:
            return ReadResult(value=None, was_found=False)
        return ReadResult(value=row[_VALUE], was_found=True)

    def batch_read(self, query: BatchRead) -> BatchReadResult:
        get = self._data.get
        values: list[bytes | None] = []
        for key in query.keys:
            row: _Row | None = get(key)
            values.append(None if row is None else row[_VALUE])
        return BatchReadResult(values=tuple(values))

    def scan(self, query: Scan) -> ScanResult:
        """One page of keys starting with `query.prefix`, in O(log n + page size).

        All keys with a given prefix form one contiguous run of the sorted key list, starting at the
        first key >= prefix, so the walk can stop at the first non-matching key. Without
        `include_internal`, keys under a reserved prefix (aspen.kv.records) are skipped; they are
        one contiguous run per prefix too, so the walk jumps over each run in one O(log n) step and
        a page still holds `limit` visible keys.
        """
        prefix = query.prefix
        limit = DEFAULT_SCAN_LIMIT if query.limit is None else max(0, min(query.limit, MAX_SCAN_RESULTS))
        token = query.continuation_token
        data = self._data
        if token is not None and token >= prefix:
            # Strictly after the token; works even if the token key has been deleted since.
            keys = data.irange(minimum=token, inclusive=(False, True))
        else:
            # No token, or one before the prefix (no match can lie between them): start at prefix.
            token = None
            keys = data.irange(minimum=prefix)
        hidden = () if query.include_internal else RESERVED_PREFIXES
        entries: list[ScanEntry] = []
        is_truncated = False
        while keys is not None:
            walk, keys = keys, None
            for key in walk:
                if not key.startswith(prefix):
                    break
                if hidden and key.startswith(hidden):
                    # Resume at the first key past this reserved run (strictly after `key`).
                    keys = data.irange(minimum=_past_run(next(p for p in hidden if key.startswith(p))))
                    break
                if len(entries) == limit:
                    # One look-ahead key tells "exactly limit matches" apart from "more to come".
                    is_truncated = True
                    break
                row: _Row = data[key]
                entries.append(ScanEntry(key, row[_VALUE], row[_VERSION], row[_CREATE], row[_MOD]))
        next_token: str | None = None
        if is_truncated:
            # With limit 0 nothing was returned: resume from where this page started.
            next_token = entries[-1].key if entries else token
        return ScanResult(
            entries=tuple(entries),
            count=len(entries),
            is_truncated=is_truncated,
            continuation_token=next_token,
        )

    @overload
    def query(self, query: Read) -> ReadResult: ...
    @overload
    def query(self, query: Scan) -> ScanResult: ...
    @overload
    def query(self, query: BatchRead) -> BatchReadResult: ...
    @overload
    def query(self, query: Query) -> QueryResult: ...

    def query(self, query: Query) -> QueryResult:
        """Serve any query type; raises `TypeError` for a non-query."""
        if isinstance(query, Read):
            return self.read(query)
        if isinstance(query, Scan):
            return self.scan(query)
        if isinstance(query, BatchRead):
            return self.batch_read(query)
        raise TypeError(f"not a KV query: {type(query).__name__}")

    # ----------------------------------------------------------------------------------------------
    # Snapshots

    def _columns(self) -> list[Any]:
        """The contents in a columnar layout: compact under msgpack (runs of small ints stay one byte
        each) and built with C-level list operations rather than a Python loop per key."""
        data = self._data
        keys: list[str] = list(data)
        rows: list[_Row] = list(map(data.__getitem__, keys))
        if not rows:
            return [[], [], [], [], [], []]
        # itemgetter per column, not zip(*rows): the transposition builds argument tuples as long as
        # the store and triggers GC passes, many times slower on a large store (docs/performance.md).
        values, versions, creates, mods, leases = (list(map(itemgetter(i), rows)) for i in range(5))
        # mod_revision is stored as a delta to create_revision: 0 (one byte) for never-updated keys.
        mod_deltas = list(map(operator.sub, mods, creates))
        # Leases are rare: store (position, lease_id) pairs, flattened, instead of a column of nils.
        lease_pairs: list[int] = []
        if leases.count(None) != len(leases):
            for pos, lease_id in enumerate(leases):
                if lease_id is not None:
                    lease_pairs += (pos, lease_id)
        return [keys, values, versions, creates, mod_deltas, lease_pairs]

    def snapshot(self) -> bytes:
        """Serialize `applied_index`, all entries and the lease table (msgpack)."""
        packed: bytes = msgpack.packb(
            [SNAPSHOT_FORMAT, self._applied_index, *self._columns(), self._leases.to_columns()]
        )
        return packed

    def state_hash(self) -> str:
        """Hex BLAKE3 digest of the contents (not of `applied_index`); equal maps hash equal."""
        hasher = blake3.blake3(_STATE_HASH_DOMAIN)
        hasher.update(msgpack.packb(self._columns()))
        if not self._leases.is_pristine():
            # Appended only once leases were used, so lease-free states keep their earlier hashes;
            # msgpack values are self-delimiting, so the concatenation is unambiguous.
            hasher.update(msgpack.packb(self._leases.to_columns()))
        digest: str = hasher.hexdigest()
        return digest

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot. Raises `ValueError` if `data` is not a valid
        snapshot; the current state is untouched in that case (everything is decoded first)."""
        self._data, self._applied_index, self._leases = _decode_snapshot(data)
        if self.on_change is not None:
            self.on_change(None)

    @classmethod
    def from_snapshot(cls, data: bytes, layers: Mapping[str, LayerApplier] | None = None) -> KvStateMachine:
        machine = cls(layers)
        machine.restore(data)
        return machine


def _past_run(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix` (code point order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _only(column: list[Any], kind: type) -> bool:
    # set(map(type, ...)) runs in C; exact types, so bool never passes for int.
    return set(map(type, column)) <= {kind}


def _decode_snapshot(data: bytes) -> tuple[Any, int, LeaseTable]:
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types on corrupt input; normalize them.
        raise ValueError(f"corrupt KV snapshot: {exc}") from exc
    if type(obj) is not list or not obj:
        raise ValueError("corrupt KV snapshot: bad layout")
    fmt = obj[0]
    if type(fmt) is not int or fmt not in (_SNAPSHOT_FORMAT_ROWS_ONLY, SNAPSHOT_FORMAT):
        raise ValueError(f"unsupported KV snapshot format {fmt!r}")
    if len(obj) != (8 if fmt == _SNAPSHOT_FORMAT_ROWS_ONLY else 9):
        raise ValueError("corrupt KV snapshot: bad layout")
    _, applied_index, keys, values, versions, creates, mod_deltas, lease_pairs = obj[:8]
    table = LeaseTable() if fmt == _SNAPSHOT_FORMAT_ROWS_ONLY else LeaseTable.from_columns(obj[8])
    if type(applied_index) is not int or applied_index < 0:
        raise ValueError("corrupt KV snapshot: bad applied index")
    columns = (keys, values, versions, creates, mod_deltas, lease_pairs)
    if any(type(column) is not list for column in columns):
        raise ValueError("corrupt KV snapshot: bad column")
    n = len(keys)
    if any(len(column) != n for column in columns[:-1]) or len(lease_pairs) % 2:
        raise ValueError("corrupt KV snapshot: column lengths differ")
    if not (
        _only(keys, str)
        and _only(values, bytes)
        and _only(versions, int)
        and _only(creates, int)
        and _only(mod_deltas, int)
        and _only(lease_pairs, int)
    ):
        raise ValueError("corrupt KV snapshot: bad field type")
    mods = list(map(operator.add, creates, mod_deltas))
    leases: list[int | None] = [None] * n
    for i in range(0, len(lease_pairs), 2):
        pos, lease_id = lease_pairs[i], lease_pairs[i + 1]
        if not 0 <= pos < n:
            raise ValueError("corrupt KV snapshot: bad lease position")
        if lease_id not in table:
            if fmt != _SNAPSHOT_FORMAT_ROWS_ONLY:
                raise ValueError("corrupt KV snapshot: key attached to an unknown lease")
            # Format 1 predates leases: no lease was ever granted, so an id on a row (possible only
            # through an internal Write) named nothing; every replica drops it the same way.
            continue
        leases[pos] = lease_id
        table.attach(keys[pos], lease_id)
    # Input is already sorted, so SortedDict's sort is a linear Timsort pass.
    restored = SortedDict(zip(keys, zip(values, versions, creates, mods, leases, strict=True), strict=True))
    if len(restored) != n:
        raise ValueError("corrupt KV snapshot: duplicate keys")
    return restored, applied_index, table


# Dispatch by exact command type (see `apply`).
_APPLIERS: dict[type[Any], Callable[[KvStateMachine, int, Any], Any]] = {
    Write: KvStateMachine._apply_write,
    Delete: KvStateMachine._apply_delete,
    CompareAndSwap: KvStateMachine._apply_cas,
    CompareAndDelete: KvStateMachine._apply_cad,
    BatchWrite: KvStateMachine._apply_batch,
    ConditionalBatchWrite: KvStateMachine._apply_conditional_batch,
    # Leases (log tags 16-31)
    LeaseGrant: KvStateMachine._apply_lease_grant,
    LeaseRevoke: KvStateMachine._apply_lease_revoke,
    LeaseKeepalive: KvStateMachine._apply_lease_keepalive,
    LeaseRevokeExpired: KvStateMachine._apply_lease_revoke_expired,
    WriteWithLease: KvStateMachine._apply_write_with_lease,
    # Coordination layers (log tag 32)
    LayerCommand: KvStateMachine._apply_layer,
}

__all__ = ["CONDITION_NOT_MET", "SNAPSHOT_FORMAT", "KvStateMachine"]
