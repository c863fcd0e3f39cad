"""Wire models of the queue requests (reference §4.3 109-121, §7.8), each declared once
(aspen.api.operation): the queue layer implements them, `aspen-cli queue …` and the client's
`queue_*` methods are derived from them. `QueueDequeue` and `QueueDequeueWait` share
`QueueDequeueResult`, as in the reference. `QueueDequeueWait` waits in the node, in a
hand-written handler; its client method and CLI command are derived like the others'."""

from __future__ import annotations

from typing import Annotated, Literal

from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U32, U64, Result, WireModel


# ----------------------------------------------------------------------------------------- results --
class QueueDequeuedItem(WireModel):
    item_id: U64
    payload: bytes
    receipt_handle: str
    delivery_attempts: U32
    enqueued_at_ms: U64
    visibility_deadline_ms: U64
    message_group_id: str | None = None


class QueuePeekedItem(WireModel):
    item_id: U64
    payload: bytes
    delivery_attempts: U32
    enqueued_at_ms: U64
    expires_at_ms: U64
    message_group_id: str | None = None


class QueueDLQItem(WireModel):
    item_id: U64
    payload: bytes
    delivery_attempts: U32
    enqueued_at_ms: U64
    reason: str
    moved_at_ms: U64
    last_error: str | None = None


class QueueCreateResult(Result):
    type: Literal["QueueCreateResult"] = "QueueCreateResult"
    is_success: bool
    was_created: bool = False
    error: str | None = None


class QueueDeleteResult(Result):
    type: Literal["QueueDeleteResult"] = "QueueDeleteResult"
    is_success: bool
    items_deleted: U64 | None = None
    error: str | None = None


class QueueEnqueueResult(Result):
    type: Literal["QueueEnqueueResult"] = "QueueEnqueueResult"
    is_success: bool
    item_id: U64 | None = None
    error: str | None = None


class QueueEnqueueBatchResult(Result):
    type: Literal["QueueEnqueueBatchResult"] = "QueueEnqueueBatchResult"
    is_success: bool
    item_ids: list[U64] = []
    error: str | None = None


class QueueDequeueResult(Result):
    type: Literal["QueueDequeueResult"] = "QueueDequeueResult"
    is_success: bool
    items: list[QueueDequeuedItem] = []
    error: str | None = None


class QueuePeekResult(Result):
    type: Literal["QueuePeekResult"] = "QueuePeekResult"
    is_success: bool
    items: list[QueuePeekedItem] = []
    error: str | None = None


class QueueOpResult(Result):
    """The answer to ack, nack, extend and redrive (`new_deadline_ms` only for extend)."""

    type: Literal["QueueOpResult"] = "QueueOpResult"
    is_success: bool
    new_deadline_ms: U64 | None = None
    error: str | None = None


class QueueStatusResult(Result):
    type: Literal["QueueStatusResult"] = "QueueStatusResult"
    is_success: bool
    does_exist: bool = False
    visible_count: U64 = 0
    pending_count: U64 = 0
    dlq_count: U64 = 0
    total_enqueued: U64 = 0
    total_acked: U64 = 0
    total_dlq: U64 = 0
    error: str | None = None


class QueueGetDLQResult(Result):
    type: Literal["QueueGetDLQResult"] = "QueueGetDLQResult"
    is_success: bool
    items: list[QueueDLQItem] = []
    error: str | None = None


# ---------------------------------------------------------------------------------------- requests --
queue = Family(
    "queue",
    "Message queues: FIFO, groups, dedup, visibility timeouts, dead-letter queue.",
    "queue",
    QueueOpResult,
)
_QUEUE = Annotated[str, Arg("queue")]
_RECEIPT = Annotated[str, Arg("receipt")]
_CONSUMER = Annotated[str, Opt("--consumer", help="Consumer id.")]
_VISIBILITY = Annotated[
    U64, Opt("--visibility", help="Visibility timeout of the claimed items (ms).", required=True)
]
_MAX = Annotated[U32, Opt("--max", low=1)]


@queue.write("create", result=QueueCreateResult, printer="queue-result")
class QueueCreate(WireModel):
    """Create QUEUE (succeeds, with was_created=false, if it exists)."""

    type: Literal["QueueCreate"] = "QueueCreate"
    queue_name: _QUEUE
    default_visibility_timeout_ms: Annotated[
        U64, Opt("--visibility-timeout", help="Default visibility (ms).")
    ] = 30_000
    default_ttl_ms: Annotated[U64, Opt("--ttl", help="Default item TTL in ms (0 = none).")] = 0
    max_delivery_attempts: Annotated[U32, Opt("--max-attempts", help="0 = unlimited.")] = 3


@queue.write("delete", result=QueueDeleteResult, printer="queue-result")
class QueueDelete(WireModel):
    """Delete QUEUE with all its items, pending items and dead letters."""

    type: Literal["QueueDelete"] = "QueueDelete"
    queue_name: _QUEUE


@queue.write("enqueue", result=QueueEnqueueResult, printer="queue-result")
class QueueEnqueue(WireModel):
    """Append PAYLOAD to QUEUE (creating the queue with defaults if needed)."""

    type: Literal["QueueEnqueue"] = "QueueEnqueue"
    queue_name: _QUEUE
    payload: Annotated[bytes, Arg()]
    ttl_ms: Annotated[U64 | None, Opt("--ttl", help="Item TTL in ms (default: the queue's).")] = None
    message_group_id: Annotated[
        str | None, Opt("--group", help="Message group id (FIFO within the group).")
    ] = None
    deduplication_id: Annotated[str | None, Opt("--dedup", help="Deduplication id (5 minute window).")] = None


class QueueEnqueueItem(WireModel):
    payload: bytes
    ttl_ms: U64 | None = None
    message_group_id: str | None = None
    deduplication_id: str | None = None


@queue.write("enqueue-batch", result=QueueEnqueueBatchResult, printer="queue-result", label="enqueue-batch")
class QueueEnqueueBatch(WireModel):
    """Append several items to QUEUE atomically."""

    type: Literal["QueueEnqueueBatch"] = "QueueEnqueueBatch"
    queue_name: _QUEUE
    items: Annotated[
        list[QueueEnqueueItem],
        Opt(
            help='JSON array: [{"payload":"…","ttl_ms"?,"message_group_id"?,"deduplication_id"?}, …]',
            parser="queue-items",
        ),
    ]


@queue.write("dequeue", result=QueueDequeueResult, printer="queue-items")
class QueueDequeue(WireModel):
    """Claim up to --max visible items of QUEUE (FIFO; one in flight per message group)."""

    type: Literal["QueueDequeue"] = "QueueDequeue"
    queue_name: _QUEUE
    consumer_id: _CONSUMER
    max_items: _MAX = 1
    visibility_timeout_ms: _VISIBILITY = 30_000


# The node parks it (proposing nothing) until an item can be handed out, at most
# `MAX_WAIT_PER_REQUEST_MS` per request; the client re-issues it for longer waits.
@queue.blocking(
    "dequeue-wait",
    result=QueueDequeueResult,
    op="QueueDequeue",
    printer="queue-items",
    label="dequeue-wait",
    wait_field="wait_timeout_ms",
)
class QueueDequeueWait(WireModel):
    """Like dequeue, but wait up to --wait ms for an item to arrive."""

    type: Literal["QueueDequeueWait"] = "QueueDequeueWait"
    queue_name: _QUEUE
    consumer_id: _CONSUMER
    max_items: _MAX = 1
    visibility_timeout_ms: _VISIBILITY = 30_000
    wait_timeout_ms: Annotated[
        U64, Opt("--wait", help="How long to wait for an item (ms).", required=True)
    ] = 0


@queue.read("peek", result=QueuePeekResult, printer="queue-items")
class QueuePeek(WireModel):
    """Show up to --max visible items without claiming them."""

    type: Literal["QueuePeek"] = "QueuePeek"
    queue_name: _QUEUE
    max_items: _MAX = 10


@queue.write("ack")
class QueueAck(WireModel):
    """Acknowledge (remove) the item delivered with RECEIPT."""

    type: Literal["QueueAck"] = "QueueAck"
    queue_name: _QUEUE
    receipt_handle: _RECEIPT


@queue.write("nack")
class QueueNack(WireModel):
    """Give the item back (visible again at once) or, with --to-dlq, dead-letter it."""

    type: Literal["QueueNack"] = "QueueNack"
    queue_name: _QUEUE
    receipt_handle: _RECEIPT
    move_to_dlq: Annotated[bool, Opt("--to-dlq", help="Move the item to the dead-letter queue.")] = False
    error_message: Annotated[str | None, Opt("--error", help="Why the item failed (kept in the DLQ).")] = None


@queue.write("extend", op="QueueExtend")
class QueueExtendVisibility(WireModel):
    """Extend the visibility timeout of the item delivered with RECEIPT."""

    type: Literal["QueueExtendVisibility"] = "QueueExtendVisibility"
    queue_name: _QUEUE
    receipt_handle: _RECEIPT
    additional_timeout_ms: Annotated[U64, Opt("--add", help="New visibility from now (ms).", low=1)]


@queue.read("status", result=QueueStatusResult, printer="queue-status")
class QueueStatus(WireModel):
    """Counts of visible, pending and dead-lettered items."""

    type: Literal["QueueStatus"] = "QueueStatus"
    queue_name: _QUEUE


@queue.read("dlq", result=QueueGetDLQResult, printer="queue-items")
class QueueGetDLQ(WireModel):
    """List dead-lettered items of QUEUE."""

    type: Literal["QueueGetDLQ"] = "QueueGetDLQ"
    queue_name: _QUEUE
    max_items: _MAX = 10


@queue.write("redrive", op="QueueRedrive")
class QueueRedriveDLQ(WireModel):
    """Move dead-lettered ITEM_ID back to the queue with its attempts reset."""

    type: Literal["QueueRedriveDLQ"] = "QueueRedriveDLQ"
    queue_name: _QUEUE
    item_id: Annotated[U64, Arg()]
