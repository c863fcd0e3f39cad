"""Printer of `aspen-cli rwlock …` (the commands are derived from the declarations in
aspen.api.locks): JSON `{"operation","name","is_success","mode","fencing_token","deadline_ms",
"reader_count","writer_holder","error"}`; exit 1 when `is_success` is false. `--timeout` of
`read`/`write` is the wait (the global RPC timeout goes before the group)."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output


def _human(operation: str, res: Any) -> str:
    if not res.is_success:
        return f"{operation} failed: {res.error}"
    if operation in ("read", "try_read"):
        return f"Read lock acquired (readers: {res.reader_count})"
    if operation in ("write", "try_write"):
        return f"Write lock acquired. Fencing token: {res.fencing_token}"
    if operation == "release_read":
        return "Read lock released."
    if operation == "release_write":
        return "Write lock released."
    if operation == "downgrade":
        return f"Downgraded to read lock (readers: {res.reader_count}). Fencing token: {res.fencing_token}"
    if res.mode == "read":
        return f"Read mode ({res.reader_count} readers)"
    if res.mode == "write":
        return f"Write mode (holder: {res.writer_holder})"
    return "Mode: free"


@printer("rwlock")
def rwlock_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "name": request.name,
        "is_success": res.is_success,
        "mode": res.mode,
        "fencing_token": res.fencing_token,
        "deadline_ms": res.deadline_ms,
        "reader_count": res.reader_count,
        "writer_holder": res.writer_holder,
        "error": res.error,
    }
    return Output(doc, _human(operation, res), ok=res.is_success)
