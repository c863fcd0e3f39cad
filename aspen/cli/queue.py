"""`aspen-cli queue …` (reference §6.6): payloads are text on the command line; item lists print as
`{"is_success","items":[{"item_id","receipt_handle","payload","delivery_attempts"}],"error"}`.
Every subcommand exits 1 when `is_success` is false."""

from __future__ import annotations

import json
from typing import Any

import click
import pydantic

from aspen.api import queue as w
from aspen.cli.context import command
from aspen.cli.output import Output, human_bytes, json_bytes
from aspen.client.client import AspenClient

MS = click.IntRange(min=0, max=2**64 - 1)
COUNT = click.IntRange(min=1, max=2**32 - 1)


@click.group("queue")
def queue_group() -> None:
    """Message queues: FIFO, groups, dedup, visibility timeouts, dead-letter queue."""


def _status_output(operation: str, ok: bool, error: str | None) -> Output:
    doc = {"operation": operation, "is_success": ok, "error": error}
    return Output(doc, "OK" if ok else f"{operation} failed: {error}", ok=ok)


def _items_output(
    res: w.QueueDequeueResult | w.QueuePeekResult | w.QueueGetDLQResult, operation: str
) -> Output:
    items: list[dict[str, Any]] = []
    lines = [f"Found {len(res.items)} item(s)"] if res.items else ["No items"]
    for item in res.items:
        receipt = item.receipt_handle if isinstance(item, w.QueueDequeuedItem) else ""
        doc = {
            "item_id": item.item_id,
            "receipt_handle": receipt,
            "payload": json_bytes(item.payload),
            "delivery_attempts": item.delivery_attempts,
        }
        line = f"[{item.item_id}] {human_bytes(item.payload)} (attempts: {item.delivery_attempts}"
        if receipt:
            line += f", receipt: {receipt}"
        if isinstance(item, w.QueueDLQItem):
            line += f", reason: {item.reason}"
        items.append(doc)
        lines.append(line + ")")
    doc = {"is_success": res.is_success, "items": items, "error": res.error}
    human = "\n".join(lines) if res.is_success else f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@command(queue_group, "create")
@click.argument("queue")
@click.option(
    "--visibility-timeout", type=MS, default=30000, show_default=True, help="Default visibility (ms)."
)
@click.option("--ttl", type=MS, default=0, show_default=True, help="Default item TTL in ms (0 = none).")
@click.option(
    "--max-attempts", type=click.IntRange(0, 2**32 - 1), default=3, show_default=True, help="0 = unlimited."
)
async def create(
    client: AspenClient, queue: str, visibility_timeout: int, ttl: int, max_attempts: int
) -> Output:
    """Create QUEUE (succeeds, with was_created=false, if it exists)."""
    res = await client.queue_create(
        queue,
        visibility_timeout_ms=visibility_timeout,
        default_ttl_ms=ttl,
        max_delivery_attempts=max_attempts,
    )
    doc = {"is_success": res.is_success, "was_created": res.was_created, "error": res.error}
    if not res.is_success:
        return Output(doc, f"create failed: {res.error}", ok=False)
    return Output(doc, "Queue created" if res.was_created else "Queue already exists")


@command(queue_group, "delete")
@click.argument("queue")
async def delete(client: AspenClient, queue: str) -> Output:
    """Delete QUEUE with all its items, pending items and dead letters."""
    res = await client.queue_delete(queue)
    doc = {"is_success": res.is_success, "items_deleted": res.items_deleted, "error": res.error}
    human = f"Deleted {res.items_deleted} item(s)" if res.is_success else f"delete failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@command(queue_group, "enqueue")
@click.argument("queue")
@click.argument("payload")
@click.option("--ttl", type=MS, default=None, help="Item TTL in ms (default: the queue's).")
@click.option("--group", default=None, help="Message group id (FIFO within the group).")
@click.option("--dedup", default=None, help="Deduplication id (5 minute window).")
async def enqueue(
    client: AspenClient, queue: str, payload: str, ttl: int | None, group: str | None, dedup: str | None
) -> Output:
    """Append PAYLOAD to QUEUE (creating the queue with defaults if needed)."""
    res = await client.queue_enqueue(queue, payload.encode(), ttl_ms=ttl, group=group, dedup_id=dedup)
    doc = {"is_success": res.is_success, "item_id": res.item_id, "error": res.error}
    human = f"Enqueued item {res.item_id}" if res.is_success else f"enqueue failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


def _parse_items(raw: str) -> list[w.QueueEnqueueItem]:
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise click.BadParameter(f"not JSON: {err}", param_hint="--items") from None
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise click.BadParameter("must be a JSON array of objects", param_hint="--items")
    items = []
    for i, entry in enumerate(data):
        if not isinstance(entry.get("payload"), str):
            raise click.BadParameter(f"item {i}: payload must be a string", param_hint="--items")
        try:
            items.append(w.QueueEnqueueItem(**{**entry, "payload": entry["payload"].encode()}))
        except pydantic.ValidationError as err:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise click.BadParameter(f"item {i}: {detail}", param_hint="--items") from None
    return items


@command(queue_group, "enqueue-batch")
@click.argument("queue")
@click.option(
    "--items",
    "items_json",
    required=True,
    help='JSON array: [{"payload":"…","ttl_ms"?,"message_group_id"?,"deduplication_id"?}, …]',
)
async def enqueue_batch(client: AspenClient, queue: str, items_json: str) -> Output:
    """Append several items to QUEUE atomically."""
    res = await client.queue_enqueue_batch(queue, _parse_items(items_json))
    doc = {"is_success": res.is_success, "item_ids": res.item_ids, "error": res.error}
    human = (
        f"Enqueued {len(res.item_ids)} item(s): {', '.join(map(str, res.item_ids))}"
        if res.is_success
        else f"enqueue-batch failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(queue_group, "dequeue")
@click.argument("queue")
@click.option("--consumer", required=True, help="Consumer id.")
@click.option("--visibility", type=MS, required=True, help="Visibility timeout of the claimed items (ms).")
@click.option("--max", "max_items", type=COUNT, default=1, show_default=True)
async def dequeue(client: AspenClient, queue: str, consumer: str, visibility: int, max_items: int) -> Output:
    """Claim up to --max visible items of QUEUE (FIFO; one in flight per message group)."""
    res = await client.queue_dequeue(queue, consumer, visibility_timeout_ms=visibility, max_items=max_items)
    return _items_output(res, "dequeue")


@command(queue_group, "dequeue-wait")
@click.argument("queue")
@click.option("--consumer", required=True, help="Consumer id.")
@click.option("--visibility", type=MS, required=True, help="Visibility timeout of the claimed items (ms).")
@click.option("--wait", type=MS, required=True, help="How long to wait for an item (ms).")
@click.option("--max", "max_items", type=COUNT, default=1, show_default=True)
async def dequeue_wait(
    client: AspenClient, queue: str, consumer: str, visibility: int, wait: int, max_items: int
) -> Output:
    """Like dequeue, but wait up to --wait ms for an item to arrive."""
    res = await client.queue_dequeue_wait(
        queue, consumer, wait_timeout_ms=wait, visibility_timeout_ms=visibility, max_items=max_items
    )
    return _items_output(res, "dequeue-wait")


@command(queue_group, "peek")
@click.argument("queue")
@click.option("--max", "max_items", type=COUNT, default=10, show_default=True)
async def peek(client: AspenClient, queue: str, max_items: int) -> Output:
    """Show up to --max visible items without claiming them."""
    return _items_output(await client.queue_peek(queue, max_items), "peek")


@command(queue_group, "ack")
@click.argument("queue")
@click.argument("receipt")
async def ack(client: AspenClient, queue: str, receipt: str) -> Output:
    """Acknowledge (remove) the item delivered with RECEIPT."""
    res = await client.queue_ack(queue, receipt)
    return _status_output("ack", res.is_success, res.error)


@command(queue_group, "nack")
@click.argument("queue")
@click.argument("receipt")
@click.option("--to-dlq", is_flag=True, help="Move the item to the dead-letter queue.")
@click.option("--error", "error_message", default=None, help="Why the item failed (kept in the DLQ).")
async def nack(
    client: AspenClient, queue: str, receipt: str, to_dlq: bool, error_message: str | None
) -> Output:
    """Give the item back (visible again at once) or, with --to-dlq, dead-letter it."""
    res = await client.queue_nack(queue, receipt, to_dlq=to_dlq, error=error_message)
    return _status_output("nack", res.is_success, res.error)


@command(queue_group, "extend")
@click.argument("queue")
@click.argument("receipt")
@click.option(
    "--add", "add_ms", type=click.IntRange(min=1), required=True, help="New visibility from now (ms)."
)
async def extend(client: AspenClient, queue: str, receipt: str, add_ms: int) -> Output:
    """Extend the visibility timeout of the item delivered with RECEIPT."""
    res = await client.queue_extend(queue, receipt, add_ms)
    out = _status_output("extend", res.is_success, res.error)
    if res.is_success:
        return Output(out.doc, f"OK (visible again at {res.new_deadline_ms} ms)")
    return out


@command(queue_group, "status")
@click.argument("queue")
async def status(client: AspenClient, queue: str) -> Output:
    """Counts of visible, pending and dead-lettered items."""
    res = await client.queue_status(queue)
    doc = {
        "is_success": res.is_success,
        "queue_name": queue,
        "visible_count": res.visible_count,
        "pending_count": res.pending_count,
        "dlq_count": res.dlq_count,
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"status failed: {res.error}", ok=False)
    human = (
        f"Queue: {queue}\nVisible: {res.visible_count}\nPending: {res.pending_count}\nDLQ: {res.dlq_count}"
    )
    return Output(doc, human)


@command(queue_group, "dlq")
@click.argument("queue")
@click.option("--max", "max_items", type=COUNT, default=10, show_default=True)
async def dlq(client: AspenClient, queue: str, max_items: int) -> Output:
    """List dead-lettered items of QUEUE."""
    return _items_output(await client.queue_dlq(queue, max_items), "dlq")


@command(queue_group, "redrive")
@click.argument("queue")
@click.argument("item_id", type=MS)
async def redrive(client: AspenClient, queue: str, item_id: int) -> Output:
    """Move dead-lettered ITEM_ID back to the queue with its attempts reset."""
    res = await client.queue_redrive(queue, item_id)
    return _status_output("redrive", res.is_success, res.error)
