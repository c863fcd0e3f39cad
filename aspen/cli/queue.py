"""`aspen-cli queue …` (reference §6.6): the commands are derived from the declarations in
aspen.api.queue; here are their printers and the parser of `enqueue-batch --items`. Payloads
are text on the command line; item lists print as
`{"is_success","items":[{"item_id","receipt_handle","payload","delivery_attempts"}],"error"}`.
Every subcommand exits 1 when `is_success` is false."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from aspen.api import queue as w
from aspen.cli.operations import parser, printer
from aspen.cli.output import Output, human_bytes, json_bytes


@printer("queue")
def op_output(request: Any, operation: str, res: w.QueueOpResult) -> Output:
    """ack, nack, extend, redrive."""
    doc = {"operation": operation, "is_success": res.is_success, "error": res.error}
    if not res.is_success:
        return Output(doc, f"{operation} failed: {res.error}", ok=False)
    if res.new_deadline_ms is not None:
        return Output(doc, f"OK (visible again at {res.new_deadline_ms} ms)")
    return Output(doc, "OK")


@printer("queue-items")
def items_output(
    request: Any, operation: str, res: w.QueueDequeueResult | w.QueuePeekResult | w.QueueGetDLQResult
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


#: The human line of a successful create, delete, enqueue and enqueue-batch (their JSON is the result).
_DONE: dict[str, Callable[[Any], str]] = {
    "create": lambda r: "Queue created" if r.was_created else "Queue already exists",
    "delete": lambda r: f"Deleted {r.items_deleted} item(s)",
    "enqueue": lambda r: f"Enqueued item {r.item_id}",
    "enqueue-batch": lambda r: f"Enqueued {len(r.item_ids)} item(s): {', '.join(map(str, r.item_ids))}",
}


@printer("queue-result")
def result_output(request: Any, operation: str, res: Any) -> Output:
    human = _DONE[operation](res) if res.is_success else f"{operation} failed: {res.error}"
    return Output(res.model_dump(exclude={"type", "status"}), human, ok=res.is_success)


@printer("queue-status")
def status_output(request: w.QueueStatus, operation: str, res: w.QueueStatusResult) -> Output:
    doc = {
        "is_success": res.is_success,
        "queue_name": request.queue_name,
        "visible_count": res.visible_count,
        "pending_count": res.pending_count,
        "dlq_count": res.dlq_count,
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"status failed: {res.error}", ok=False)
    human = (
        f"Queue: {request.queue_name}\nVisible: {res.visible_count}\nPending: {res.pending_count}\n"
        f"DLQ: {res.dlq_count}"
    )
    return Output(doc, human)


@parser("queue-items")
def parse_items(raw: str) -> list[w.QueueEnqueueItem]:
    """`--items`: a JSON array of items whose payloads are text."""
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
        # A field of the wrong type raises `InvalidRequestError` (exit 1), as any bad request does.
        items.append(w.QueueEnqueueItem(**{**entry, "payload": entry["payload"].encode()}))
    return items
