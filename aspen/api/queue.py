"""Wire models of the queue requests (reference §4.3 109-121, §7.8). `QueueDequeue` and
`QueueDequeueWait` share `QueueDequeueResult`, as in the reference."""

from __future__ import annotations

from typing import Literal

from aspen.api.wire import U32, U64, WireModel


class QueueCreate(WireModel):
    type: Literal["QueueCreate"] = "QueueCreate"
    queue_name: str
    default_visibility_timeout_ms: U64 = 30_000
    default_ttl_ms: U64 = 0
    max_delivery_attempts: U32 = 3


class QueueDelete(WireModel):
    type: Literal["QueueDelete"] = "QueueDelete"
    queue_name: str


class QueueEnqueue(WireModel):
    type: Literal["QueueEnqueue"] = "QueueEnqueue"
    queue_name: str
    payload: bytes
    ttl_ms: U64 | None = None
    message_group_id: str | None = None
    deduplication_id: str | None = None


class QueueEnqueueItem(WireModel):
    payload: bytes
    ttl_ms: U64 | None = None
    message_group_id: str | None = None
    deduplication_id: str | None = None


class QueueEnqueueBatch(WireModel):
    type: Literal["QueueEnqueueBatch"] = "QueueEnqueueBatch"
    queue_name: str
    items: list[QueueEnqueueItem]


class QueueDequeue(WireModel):
    type: Literal["QueueDequeue"] = "QueueDequeue"
    queue_name: str
    consumer_id: str
    max_items: U32 = 1
    visibility_timeout_ms: U64 = 30_000


class QueueDequeueWait(WireModel):
    """Dequeue, waiting up to `wait_timeout_ms` for an item (the node waits at most
    `MAX_WAIT_PER_REQUEST_MS` per request; the client re-issues it for longer waits)."""

    type: Literal["QueueDequeueWait"] = "QueueDequeueWait"
    queue_name: str
    consumer_id: str
    max_items: U32 = 1
    visibility_timeout_ms: U64 = 30_000
    wait_timeout_ms: U64 = 0


class QueuePeek(WireModel):
    type: Literal["QueuePeek"] = "QueuePeek"
    queue_name: str
    max_items: U32 = 10


class QueueAck(WireModel):
    type: Literal["QueueAck"] = "QueueAck"
    queue_name: str
    receipt_handle: str


class QueueNack(WireModel):
    type: Literal["QueueNack"] = "QueueNack"
    queue_name: str
    receipt_handle: str
    move_to_dlq: bool = False
    error_message: str | None = None


class QueueExtendVisibility(WireModel):
    type: Literal["QueueExtendVisibility"] = "QueueExtendVisibility"
    queue_name: str
    receipt_handle: str
    additional_timeout_ms: U64


class QueueStatus(WireModel):
    type: Literal["QueueStatus"] = "QueueStatus"
    queue_name: str


class QueueGetDLQ(WireModel):
    type: Literal["QueueGetDLQ"] = "QueueGetDLQ"
    queue_name: str
    max_items: U32 = 10


class QueueRedriveDLQ(WireModel):
    type: Literal["QueueRedriveDLQ"] = "QueueRedriveDLQ"
    queue_name: str
    item_id: U64


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


class QueueCreateResult(WireModel):
    type: Literal["QueueCreateResult"] = "QueueCreateResult"
    is_success: bool
    was_created: bool = False
    error: str | None = None


class QueueDeleteResult(WireModel):
    type: Literal["QueueDeleteResult"] = "QueueDeleteResult"
    is_success: bool
    items_deleted: U64 | None = None
    error: str | None = None


class QueueEnqueueResult(WireModel):
    type: Literal["QueueEnqueueResult"] = "QueueEnqueueResult"
    is_success: bool
    item_id: U64 | None = None
    error: str | None = None


class QueueEnqueueBatchResult(WireModel):
    type: Literal["QueueEnqueueBatchResult"] = "QueueEnqueueBatchResult"
    is_success: bool
    item_ids: list[U64] = []
    error: str | None = None


class QueueDequeueResult(WireModel):
    type: Literal["QueueDequeueResult"] = "QueueDequeueResult"
    is_success: bool
    items: list[QueueDequeuedItem] = []
    error: str | None = None


class QueuePeekResult(WireModel):
    type: Literal["QueuePeekResult"] = "QueuePeekResult"
    is_success: bool
    items: list[QueuePeekedItem] = []
    error: str | None = None


class QueueOpResult(WireModel):
    """The answer to ack, nack, extend and redrive (`new_deadline_ms` only for extend)."""

    type: Literal["QueueOpResult"] = "QueueOpResult"
    is_success: bool
    new_deadline_ms: U64 | None = None
    error: str | None = None


class QueueStatusResult(WireModel):
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


class QueueGetDLQResult(WireModel):
    type: Literal["QueueGetDLQResult"] = "QueueGetDLQResult"
    is_success: bool
    items: list[QueueDLQItem] = []
    error: str | None = None


QUEUE_WRITES = frozenset(
    {
        "QueueCreate",
        "QueueDelete",
        "QueueEnqueue",
        "QueueEnqueueBatch",
        "QueueDequeue",
        "QueueDequeueWait",
        "QueueAck",
        "QueueNack",
        "QueueExtendVisibility",
        "QueueRedriveDLQ",
    }
)
QUEUE_READS = frozenset({"QueuePeek", "QueueStatus", "QueueGetDLQ"})

QueueRequest = (
    QueueCreate
    | QueueDelete
    | QueueEnqueue
    | QueueEnqueueBatch
    | QueueDequeue
    | QueueDequeueWait
    | QueuePeek
    | QueueAck
    | QueueNack
    | QueueExtendVisibility
    | QueueStatus
    | QueueGetDLQ
    | QueueRedriveDLQ
)
QueueResponse = (
    QueueCreateResult
    | QueueDeleteResult
    | QueueEnqueueResult
    | QueueEnqueueBatchResult
    | QueueDequeueResult
    | QueuePeekResult
    | QueueOpResult
    | QueueStatusResult
    | QueueGetDLQResult
)

__all__ = [
    "QUEUE_READS",
    "QUEUE_WRITES",
    "QueueAck",
    "QueueCreate",
    "QueueCreateResult",
    "QueueDLQItem",
    "QueueDelete",
    "QueueDeleteResult",
    "QueueDequeue",
    "QueueDequeueResult",
    "QueueDequeueWait",
    "QueueDequeuedItem",
    "QueueEnqueue",
    "QueueEnqueueBatch",
    "QueueEnqueueBatchResult",
    "QueueEnqueueItem",
    "QueueEnqueueResult",
    "QueueExtendVisibility",
    "QueueGetDLQ",
    "QueueGetDLQResult",
    "QueueNack",
    "QueueOpResult",
    "QueuePeek",
    "QueuePeekResult",
    "QueuePeekedItem",
    "QueueRedriveDLQ",
    "QueueRequest",
    "QueueResponse",
    "QueueStatus",
    "QueueStatusResult",
]
