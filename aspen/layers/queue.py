"""Queues (reference §7.8, library semantics): FIFO by item id, per-group FIFO, dedup window,
visibility timeout, ack/nack/extend, max delivery attempts, dead-letter queue, redrive.

Keys (`q` is the queue name with `%` and `:` escaped, see `records.escape`):
- `__coord:queue:<q>` — queue record `{visibility_timeout_ms, default_ttl_ms,
  max_delivery_attempts, next_id, total_enqueued, total_acked, total_dlq, created_at_ms}`;
- `__coord:queue:<q>:item:<id 20 digits>` — ready items (visible), so a prefix scan is FIFO by id;
- `__coord:queue:<q>:pending:<id>` — claimed items, with `receipt`, `consumer`, `deadline_ms`;
- `__coord:queue:<q>:dlq:<id>` — dead letters, with `reason`, `moved_at_ms`, `last_error`;
- `__coord:queue:<q>:dedup:<dedup id>` — `{item_id, expires_at_ms}` for the dedup window.
Payloads are stored base64 inside the item's JSON record.

Invariants:
- An item id is in exactly one of ready / pending / DLQ (or gone after ack, TTL expiry, delete).
  Ids come from the queue's `next_id` and strictly increase; dequeue hands ready items out in
  ascending id order.
- Per-group FIFO: while an item of a message group is pending, no other item of that group is
  handed out (so a group's items are processed one at a time, in id order).
- Time is only the command's `now_ms`: a pending item whose `deadline_ms` ≤ now is visible again
  (moved back to ready by the next dequeue; counted as visible by status/peek); an item whose
  `expires_at_ms` (≠ 0) ≤ now is dropped; a dedup entry is live while `expires_at_ms` > now.
- Delivery attempts: a dequeue increments them; an item whose attempts reached
  `max_delivery_attempts` (≠ 0) goes to the DLQ (reason `MaxDeliveryAttemptsExceeded`) instead of
  being handed out again; nack does the same, or moves it there on request (`ExplicitlyRejected`).
- A receipt handle is `<item_id>:<now_ms>:<nonce>`, the nonce chosen by the proposer; ack, nack
  and extend need the exact handle of the current delivery, so a consumer whose visibility timeout
  passed cannot ack an item redelivered to someone else.
- Every scan is bounded (`SCAN_LIMIT` keys per category per operation). Expired dedup entries are
  swept a few at a time by enqueues that carry a dedup id (`DEDUP_SWEEP`).
- Waiting (dequeue-wait) happens in the node, never here: `dequeue_blocked` tells it from the
  applied state whether an item can be handed out now.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Blocked, Layer, Wait, check_user_key, drawn
from aspen.layers.records import check_id, check_range, dump, escape, load, parse

PREFIX: Final = "__coord:queue:"
DEFAULT_VISIBILITY_MS: Final = 30_000
MAX_VISIBILITY_MS: Final = 3_600_000
MAX_TTL_MS: Final = 604_800_000
DEFAULT_MAX_ATTEMPTS: Final = 3
DEDUP_WINDOW_MS: Final = 300_000
#: Dedup entries examined (and deleted if expired) by each enqueue that carries a dedup id.
DEDUP_SWEEP: Final = 2
MAX_BATCH: Final = 100
MAX_ITEMS: Final = 100
#: Base64 inside a JSON record must fit the 1 MiB KV value limit.
MAX_PAYLOAD: Final = 512 * 1024
SCAN_LIMIT: Final = 1000
U64_MAX: Final = 2**64 - 1

REASON_MAX_ATTEMPTS: Final = "MaxDeliveryAttemptsExceeded"
REASON_REJECTED: Final = "ExplicitlyRejected"
ERR_NOT_FOUND: Final = "item not found or already processed"
ERR_MISMATCH: Final = "receipt handle mismatch - item may have been redelivered"
ERR_RECEIPT: Final = "invalid receipt handle format"


def queue_key(name: str) -> str:
    return PREFIX + escape(name)


def _sub(name: str, kind: str) -> str:
    return f"{queue_key(name)}:{kind}:"


def _id_key(name: str, kind: str, item_id: int) -> str:
    return f"{_sub(name, kind)}{item_id:020d}"


def check_name(name: object) -> str | None:
    if type(name) is not str:
        return "queue name must be a string"
    # The longest key under the queue: a dedup entry (checked separately) or a 20-digit id key.
    return check_user_key(PREFIX, name) or check_user_key(PREFIX, escape(name) + ":pending:" + "0" * 20)


# -------------------------------------------------------------------------------------- operations --
@dataclass(frozen=True, slots=True)
class QueueCreate:
    queue_name: str
    default_visibility_timeout_ms: int
    default_ttl_ms: int
    max_delivery_attempts: int

    def check(self) -> str | None:
        return (
            check_name(self.queue_name)
            or check_range("visibility_timeout_ms", self.default_visibility_timeout_ms, 1, MAX_VISIBILITY_MS)
            or check_range("default_ttl_ms", self.default_ttl_ms, 0, MAX_TTL_MS)
            or check_range("max_delivery_attempts", self.max_delivery_attempts, 0, 2**32 - 1)
        )


@dataclass(frozen=True, slots=True)
class QueueDelete:
    queue_name: str

    def check(self) -> str | None:
        return check_name(self.queue_name)


#: One item to enqueue: (payload, ttl_ms (0 = the queue's default), message group, dedup id).
NewItem = tuple[bytes, int, str | None, str | None]


@dataclass(frozen=True, slots=True)
class QueueEnqueue:
    queue_name: str
    items: tuple[NewItem, ...]

    def check(self) -> str | None:
        error = check_name(self.queue_name) or check_range("batch size", len(self.items), 1, MAX_BATCH)
        if error is not None:
            return error
        for payload, ttl_ms, group, dedup in self.items:
            if len(payload) > MAX_PAYLOAD:
                return f"payload size {len(payload)} exceeds maximum of {MAX_PAYLOAD} bytes"
            error = (
                check_range("ttl_ms", ttl_ms, 0, MAX_TTL_MS)
                or (None if group is None else check_id("message group id", group))
                or (None if dedup is None else check_id("deduplication id", dedup))
                or (
                    None
                    if dedup is None
                    else check_user_key(PREFIX, f"{escape(self.queue_name)}:dedup:{dedup}")
                )
            )
            if error is not None:
                return error
        return None


@dataclass(frozen=True, slots=True)
class QueueDequeue:
    queue_name: str
    consumer_id: str
    max_items: int
    #: 0 = the queue's visibility timeout.
    visibility_timeout_ms: int
    #: Drawn by the node; makes each delivery's receipt handle unguessable.
    nonce: int = drawn()

    def check(self) -> str | None:
        return (
            check_name(self.queue_name)
            or check_id("consumer id", self.consumer_id)
            or check_range("max_items", self.max_items, 1, MAX_ITEMS)
            or check_range("visibility_timeout_ms", self.visibility_timeout_ms, 0, MAX_VISIBILITY_MS)
            or check_range("nonce", self.nonce, 0, U64_MAX)
        )


@dataclass(frozen=True, slots=True)
class QueueAck:
    queue_name: str
    receipt_handle: str

    def check(self) -> str | None:
        return check_name(self.queue_name)


@dataclass(frozen=True, slots=True)
class QueueNack:
    queue_name: str
    receipt_handle: str
    move_to_dlq: bool
    error_message: str | None

    def check(self) -> str | None:
        if self.error_message is not None and len(self.error_message.encode()) > 4096:
            return "error message exceeds 4096 bytes"
        return check_name(self.queue_name)


@dataclass(frozen=True, slots=True)
class QueueExtend:
    queue_name: str
    receipt_handle: str
    additional_timeout_ms: int

    def check(self) -> str | None:
        return check_name(self.queue_name) or check_range(
            "additional_timeout_ms", self.additional_timeout_ms, 1, MAX_VISIBILITY_MS
        )


@dataclass(frozen=True, slots=True)
class QueueRedrive:
    queue_name: str
    item_id: int

    def check(self) -> str | None:
        return check_name(self.queue_name) or check_range("item_id", self.item_id, 0, U64_MAX)


QueueOp = (
    QueueCreate
    | QueueDelete
    | QueueEnqueue
    | QueueDequeue
    | QueueAck
    | QueueNack
    | QueueExtend
    | QueueRedrive
)


# ----------------------------------------------------------------------------------------- results --
@dataclass(frozen=True, slots=True)
class QueueItem:
    """An item as reported: dequeued (receipt, deadline), peeked (expiry) or dead-lettered (reason)."""

    item_id: int
    payload: bytes
    enqueued_at_ms: int
    delivery_attempts: int
    receipt_handle: str = ""
    visibility_deadline_ms: int = 0
    expires_at_ms: int = 0
    message_group_id: str | None = None
    reason: str | None = None
    moved_at_ms: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What `status` answers: a queue's counts (all 0 when it does not exist or on an error)."""

    is_success: bool
    does_exist: bool = False
    visible_count: int = 0
    pending_count: int = 0
    dlq_count: int = 0
    total_enqueued: int = 0
    total_acked: int = 0
    total_dlq: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class QueueResult:
    is_success: bool
    error: str | None = None
    was_created: bool = False
    items_deleted: int | None = None
    item_ids: tuple[int, ...] = ()
    items: tuple[QueueItem, ...] = ()
    new_deadline_ms: int | None = None

    @property
    def item_id(self) -> int | None:
        """The id a one-item enqueue got."""
        return self.item_ids[0] if self.item_ids else None


# ----------------------------------------------------------------------------------------- records --
_META_INTS = (
    "visibility_timeout_ms",
    "default_ttl_ms",
    "max_delivery_attempts",
    "next_id",
    "total_enqueued",
    "total_acked",
    "total_dlq",
)
_ITEM_INTS = ("id", "enqueued_at_ms", "expires_at_ms", "attempts")
_OPT_STRS = ("group", "dedup", "reason", "last_error")


def _meta(reader: KvReader, name: str) -> dict[str, Any] | None:
    meta = load(reader, queue_key(name))
    if meta is not None and not all(type(meta.get(k)) is int for k in _META_INTS):
        raise Rejected(f"corrupted data in key '{queue_key(name)}': not a valid queue")
    return meta


def _checked(key: str, record: dict[str, Any]) -> dict[str, Any]:
    """`record` if it has the shape of an item record (any category), else `Rejected`: apply must
    stay total even over records a user overwrote through plain KV writes."""
    ok = (
        all(type(record.get(k)) is int for k in _ITEM_INTS)
        and type(record.get("payload")) is str
        and all(record.get(k) is None or type(record[k]) is str for k in _OPT_STRS)
        and all(type(record.get(k, 0)) is int for k in ("deadline_ms", "moved_at_ms"))
        and type(record.get("receipt", "")) is str
    )
    if ok:
        try:
            base64.b64decode(record["payload"], validate=True)
        except ValueError:
            ok = False
    if not ok:
        raise Rejected(f"corrupted data in key '{key}': not a valid queue item")
    return record


def _new_meta(op: QueueCreate | None, now_ms: int) -> dict[str, Any]:
    return {
        "visibility_timeout_ms": op.default_visibility_timeout_ms if op else DEFAULT_VISIBILITY_MS,
        "default_ttl_ms": op.default_ttl_ms if op else 0,
        "max_delivery_attempts": op.max_delivery_attempts if op else DEFAULT_MAX_ATTEMPTS,
        "next_id": 1,
        "total_enqueued": 0,
        "total_acked": 0,
        "total_dlq": 0,
        "created_at_ms": now_ms,
    }


def _records(reader: KvReader, name: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, raw in reader.scan(_sub(name, kind), limit=SCAN_LIMIT):
        out.append((key, _checked(key, parse(key, raw))))
    return out


def _item(record: dict[str, Any]) -> dict[str, Any]:
    """The ready form of an item record (without delivery or dead-letter fields)."""
    fields = ("id", "payload", "enqueued_at_ms", "expires_at_ms", "attempts", "group", "dedup")
    return {k: record.get(k) for k in fields}


def _view(record: dict[str, Any]) -> QueueItem:
    return QueueItem(
        item_id=record["id"],
        payload=base64.b64decode(record["payload"]),
        enqueued_at_ms=record["enqueued_at_ms"],
        delivery_attempts=record["attempts"],
        receipt_handle=record.get("receipt", ""),
        visibility_deadline_ms=record.get("deadline_ms", 0),
        expires_at_ms=record.get("expires_at_ms") or 0,
        message_group_id=record.get("group"),
        reason=record.get("reason"),
        moved_at_ms=record.get("moved_at_ms", 0),
        last_error=record.get("last_error"),
    )


def _expired(record: dict[str, Any], now_ms: int) -> bool:
    expires = record.get("expires_at_ms") or 0
    return bool(expires) and expires <= now_ms


def _to_dlq(
    txn: KvTxn,
    name: str,
    meta: dict[str, Any],
    record: dict[str, Any],
    reason: str,
    now_ms: int,
    error: str | None,
) -> None:
    txn.put(
        _id_key(name, "dlq", record["id"]),
        dump({**_item(record), "reason": reason, "moved_at_ms": now_ms, "last_error": error}),
    )
    meta["total_dlq"] += 1


# ---------------------------------------------------------------------------------------- applying --
def _create(txn: KvTxn, op: QueueCreate, now_ms: int) -> QueueResult:
    if _meta(txn, op.queue_name) is not None:
        return QueueResult(True, was_created=False)
    txn.put(queue_key(op.queue_name), dump(_new_meta(op, now_ms)))
    return QueueResult(True, was_created=True)


def _delete(txn: KvTxn, op: QueueDelete) -> QueueResult:
    deleted = 0
    for key, _ in txn.scan(queue_key(op.queue_name) + ":"):
        if ":dedup:" not in key[len(queue_key(op.queue_name)) :]:
            deleted += 1
        txn.delete(key)
    txn.delete(queue_key(op.queue_name))
    return QueueResult(True, items_deleted=deleted)


def _sweep_dedup(txn: KvTxn, name: str, after: str, now_ms: int) -> None:
    """Delete expired dedup entries among the next `DEDUP_SWEEP` after `after` (wrapping around):
    each enqueue with a dedup id cleans a little, so expired entries do not pile up."""
    prefix = _sub(name, "dedup")
    found = txn.scan(prefix, after=after, limit=DEDUP_SWEEP)
    if len(found) < DEDUP_SWEEP:
        found += [kv for kv in txn.scan(prefix, limit=DEDUP_SWEEP - len(found)) if kv[0] < after]
    for key, raw in found:
        try:
            expires = parse(key, raw).get("expires_at_ms")
        except Rejected:
            continue  # the enqueue that meets it reports it
        if type(expires) is int and expires <= now_ms:
            txn.delete(key)


def _enqueue(txn: KvTxn, op: QueueEnqueue, now_ms: int) -> QueueResult:
    meta = _meta(txn, op.queue_name) or _new_meta(None, now_ms)
    ids = []
    for payload, ttl_ms, group, dedup in op.items:
        dedup_key = f"{_sub(op.queue_name, 'dedup')}{dedup}"
        if dedup is not None:
            seen = load(txn, dedup_key)
            expires = seen.get("expires_at_ms") if seen is not None else None
            if (
                seen is not None
                and type(seen.get("item_id")) is int
                and type(expires) is int
                and expires > now_ms
            ):
                ids.append(seen["item_id"])
                continue
        item_id = meta["next_id"]
        meta["next_id"] = item_id + 1
        ttl = ttl_ms or meta["default_ttl_ms"]
        record = {
            "id": item_id,
            "payload": base64.b64encode(payload).decode(),
            "enqueued_at_ms": now_ms,
            "expires_at_ms": now_ms + ttl if ttl else 0,
            "attempts": 0,
            "group": group,
            "dedup": dedup,
        }
        txn.put(_id_key(op.queue_name, "item", item_id), dump(record))
        if dedup is not None:
            txn.put(dedup_key, dump({"item_id": item_id, "expires_at_ms": now_ms + DEDUP_WINDOW_MS}))
            _sweep_dedup(txn, op.queue_name, dedup_key, now_ms)
        meta["total_enqueued"] += 1
        ids.append(item_id)
    txn.put(queue_key(op.queue_name), dump(meta))
    return QueueResult(True, item_ids=tuple(ids))


def _release_expired(txn: KvTxn, name: str, now_ms: int) -> set[str]:
    """Move pending items whose visibility passed back to ready; the groups still in flight."""
    in_flight: set[str] = set()
    for key, record in _records(txn, name, "pending"):
        if record.get("deadline_ms", 0) <= now_ms:
            txn.delete(key)
            txn.put(_id_key(name, "item", record["id"]), dump(_item(record)))
        elif record.get("group") is not None:
            in_flight.add(record["group"])
    return in_flight


def _dequeue(txn: KvTxn, op: QueueDequeue, now_ms: int) -> QueueResult:
    meta = _meta(txn, op.queue_name)
    if meta is None:
        return QueueResult(True)
    before = dict(meta)
    in_flight = _release_expired(txn, op.queue_name, now_ms)
    visibility = op.visibility_timeout_ms or meta["visibility_timeout_ms"]
    max_attempts = meta["max_delivery_attempts"]
    claimed: list[QueueItem] = []
    for key, record in _records(txn, op.queue_name, "item"):
        if len(claimed) >= op.max_items:
            break
        group = record.get("group")
        if _expired(record, now_ms):
            txn.delete(key)
        elif max_attempts and record.get("attempts", 0) >= max_attempts:
            txn.delete(key)
            _to_dlq(txn, op.queue_name, meta, record, REASON_MAX_ATTEMPTS, now_ms, None)
        elif group is None or group not in in_flight:
            pending = {
                **_item(record),
                "attempts": record.get("attempts", 0) + 1,
                "receipt": f"{record['id']}:{now_ms}:{op.nonce}",
                "consumer": op.consumer_id,
                "deadline_ms": now_ms + visibility,
            }
            txn.delete(key)
            txn.put(_id_key(op.queue_name, "pending", record["id"]), dump(pending))
            if group is not None:
                in_flight.add(group)
            claimed.append(_view(pending))
    if meta != before:
        txn.put(queue_key(op.queue_name), dump(meta))
    return QueueResult(True, items=tuple(claimed))


def _pending(txn: KvTxn, name: str, receipt: str) -> tuple[str, dict[str, Any]]:
    """The pending record the receipt handle names; `Rejected` if there is none or it is stale."""
    parts = receipt.split(":")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts):
        raise Rejected(ERR_RECEIPT)
    key = _id_key(name, "pending", int(parts[0]))
    record = load(txn, key)
    if record is None:
        raise Rejected(ERR_NOT_FOUND)
    _checked(key, record)
    if record.get("receipt") != receipt:
        raise Rejected(ERR_MISMATCH)
    return key, record


def _ack(txn: KvTxn, op: QueueAck) -> QueueResult:
    key, _ = _pending(txn, op.queue_name, op.receipt_handle)
    txn.delete(key)
    meta = _meta(txn, op.queue_name)
    if meta is not None:
        meta["total_acked"] += 1
        txn.put(queue_key(op.queue_name), dump(meta))
    return QueueResult(True)


def _nack(txn: KvTxn, op: QueueNack, now_ms: int) -> QueueResult:
    key, record = _pending(txn, op.queue_name, op.receipt_handle)
    txn.delete(key)
    meta = _meta(txn, op.queue_name) or _new_meta(None, now_ms)
    max_attempts = meta["max_delivery_attempts"]
    if op.move_to_dlq:
        _to_dlq(txn, op.queue_name, meta, record, REASON_REJECTED, now_ms, op.error_message)
    elif max_attempts and record.get("attempts", 0) >= max_attempts:
        _to_dlq(txn, op.queue_name, meta, record, REASON_MAX_ATTEMPTS, now_ms, op.error_message)
    else:
        txn.put(_id_key(op.queue_name, "item", record["id"]), dump(_item(record)))
    txn.put(queue_key(op.queue_name), dump(meta))
    return QueueResult(True)


def _extend(txn: KvTxn, op: QueueExtend, now_ms: int) -> QueueResult:
    key, record = _pending(txn, op.queue_name, op.receipt_handle)
    deadline = now_ms + op.additional_timeout_ms
    txn.put(key, dump({**record, "deadline_ms": deadline}))
    return QueueResult(True, new_deadline_ms=deadline)


def _redrive(txn: KvTxn, op: QueueRedrive, now_ms: int) -> QueueResult:
    key = _id_key(op.queue_name, "dlq", op.item_id)
    record = load(txn, key)
    if record is None:
        return QueueResult(True)
    _checked(key, record)
    meta = _meta(txn, op.queue_name) or _new_meta(None, now_ms)
    ttl = meta["default_ttl_ms"]
    ready = {
        **_item(record),
        "attempts": 0,
        "enqueued_at_ms": now_ms,
        "expires_at_ms": now_ms + ttl if ttl else 0,
    }
    txn.delete(key)
    txn.put(_id_key(op.queue_name, "item", op.item_id), dump(ready))
    txn.put(queue_key(op.queue_name), dump(meta))
    return QueueResult(True)


def apply(txn: KvTxn, op: QueueOp, now_ms: int) -> QueueResult:
    if isinstance(op, QueueEnqueue):
        return _enqueue(txn, op, now_ms)
    if isinstance(op, QueueDequeue):
        return _dequeue(txn, op, now_ms)
    if isinstance(op, QueueAck):
        return _ack(txn, op)
    if isinstance(op, QueueNack):
        return _nack(txn, op, now_ms)
    if isinstance(op, QueueExtend):
        return _extend(txn, op, now_ms)
    if isinstance(op, QueueCreate):
        return _create(txn, op, now_ms)
    if isinstance(op, QueueDelete):
        return _delete(txn, op)
    return _redrive(txn, op, now_ms)


def rejected(message: str) -> QueueResult:
    return QueueResult(False, error=message)


# ----------------------------------------------------------------------------------------- queries --
# Queries take the read's (reader, now_ms) and then the request's fields by name.
def _query(name: str, run: Any, failed: Any = QueueResult) -> Any:
    error = check_name(name)
    if error is not None:
        return failed(False, error=error)
    try:
        return run()
    except Rejected as err:
        return failed(False, error=err.message)


def _visible(reader: KvReader, name: str, now_ms: int) -> list[dict[str, Any]]:
    """Ready items plus pending ones whose visibility passed, by id, without expired ones."""
    ready = [r for _, r in _records(reader, name, "item")]
    back = [r for _, r in _records(reader, name, "pending") if r.get("deadline_ms", 0) <= now_ms]
    return sorted((_item(r) for r in ready + back if not _expired(r, now_ms)), key=lambda r: int(r["id"]))


def status(reader: KvReader, now_ms: int, queue_name: str) -> QueueStats:
    def run() -> QueueStats:
        meta = _meta(reader, queue_name)
        if meta is None:
            return QueueStats(True, does_exist=False)
        pending = [r for _, r in _records(reader, queue_name, "pending") if r.get("deadline_ms", 0) > now_ms]
        return QueueStats(
            True,
            does_exist=True,
            visible_count=len(_visible(reader, queue_name, now_ms)),
            pending_count=len(pending),
            dlq_count=len(_records(reader, queue_name, "dlq")),
            total_enqueued=meta.get("total_enqueued", 0),
            total_acked=meta.get("total_acked", 0),
            total_dlq=meta.get("total_dlq", 0),
        )

    result: QueueStats = _query(queue_name, run, QueueStats)
    return result


def peek(reader: KvReader, now_ms: int, queue_name: str, max_items: int) -> QueueResult:
    """Up to `max_items` visible items in FIFO order, without claiming them."""

    def run() -> QueueResult:
        return QueueResult(True, items=tuple(map(_view, _visible(reader, queue_name, now_ms)[:max_items])))

    result: QueueResult = _query(queue_name, run)
    return result


def dead_letters(reader: KvReader, now_ms: int, queue_name: str, max_items: int) -> QueueResult:
    """Up to `max_items` dead letters by id (`now_ms` unused: dead letters do not expire)."""

    def run() -> QueueResult:
        letters = _records(reader, queue_name, "dlq")[:max_items]
        # A dead letter always has a reason; one a user overwrote without it reads as "".
        return QueueResult(
            True, items=tuple(_view({**r, "reason": r.get("reason") or ""}) for _, r in letters)
        )

    result: QueueResult = _query(queue_name, run)
    return result


def dequeue_blocked(reader: KvReader, now_ms: int, op: QueueDequeue) -> Blocked | None:
    """A dequeue-wait parks while no item can be handed out: none is visible, or every visible one
    belongs to a message group with an item in flight. Any change under the queue wakes it, and so
    does the end of the first in-flight item's visibility timeout."""
    try:
        pending = [r for _, r in _records(reader, op.queue_name, "pending")]
        live = [r for r in pending if r.get("deadline_ms", 0) > now_ms]
        in_flight = {r["group"] for r in live if r.get("group") is not None}
        visible = _visible(reader, op.queue_name, now_ms)
    except Rejected:
        return None  # let the dequeue itself report the corruption
    if any(r.get("group") is None or r["group"] not in in_flight for r in visible):
        return None
    ready_at = min((r["deadline_ms"] for r in live), default=None)
    key = queue_key(op.queue_name)
    return Blocked((key,), QueueResult(True), ready_at, prefixes=(key + ":",))


def dequeue_settled(reader: KvReader, now_ms: int, op: QueueDequeue, result: QueueResult) -> Any:
    """A dequeue that handed nothing out (its items went to the DLQ, or another consumer was first)
    waits on."""
    return result if result.items or not result.is_success else None


def _enqueue_one(
    queue_name: str,
    payload: bytes,
    ttl_ms: int | None,
    message_group_id: str | None,
    deduplication_id: str | None,
) -> QueueEnqueue:
    """One enqueue request is a batch of one (ttl None or 0: the queue's default)."""
    return QueueEnqueue(queue_name, ((payload, ttl_ms or 0, message_group_id, deduplication_id),))


def _enqueue_batch(queue_name: str, items: tuple[tuple[Any, ...], ...]) -> QueueEnqueue:
    """`items`: (payload, ttl_ms or None, message group, dedup id) each."""
    return QueueEnqueue(queue_name, tuple((p, ttl or 0, group, dedup) for p, ttl, group, dedup in items))


LAYER: Final[Layer[QueueOp, QueueResult]] = Layer(
    name="queue",
    ops=(
        QueueCreate,
        QueueDelete,
        QueueEnqueue,
        QueueDequeue,
        QueueAck,
        QueueNack,
        QueueExtend,
        QueueRedrive,
    ),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX,),
    queries={"QueuePeek": peek, "QueueStatus": status, "QueueGetDLQ": dead_letters},
    builders={"QueueEnqueue": _enqueue_one, "QueueEnqueueBatch": _enqueue_batch},
    waits={"QueueDequeue": Wait(dequeue_blocked, settle=dequeue_settled)},
)

__all__ = [
    "LAYER",
    "MAX_BATCH",
    "MAX_ITEMS",
    "PREFIX",
    "QueueAck",
    "QueueCreate",
    "QueueDelete",
    "QueueDequeue",
    "QueueEnqueue",
    "QueueExtend",
    "QueueItem",
    "QueueNack",
    "QueueOp",
    "QueueRedrive",
    "QueueResult",
    "QueueStats",
    "dead_letters",
    "dequeue_blocked",
    "dequeue_settled",
    "peek",
    "queue_key",
    "status",
]
