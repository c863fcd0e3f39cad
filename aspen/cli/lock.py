"""Printer of `aspen-cli lock …` (the commands are derived from the declarations in
aspen.api.locks): JSON `{"operation","key","is_success","fencing_token","holder_id","deadline_ms",
"error"}`; exit 1 when `is_success` is false (held by someone else, a wrong holder or token, a
timed-out wait, a rejected TTL). `--timeout` of `acquire` is the wait; the RPC timeout is the
global one, given before the group (`aspen-cli --timeout 60000 lock acquire …`)."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output

_HUMAN_OK = {
    "acquire": "Lock acquired. Fencing token: {token}",
    "try_acquire": "Lock acquired. Fencing token: {token}",
    "release": "Lock released.",
    "renew": "Lock renewed. New deadline: {deadline} ms",
}


@printer("lock")
def lock_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "key": request.key,
        "is_success": res.is_success,
        "fencing_token": res.fencing_token,
        "holder_id": res.holder_id,
        "deadline_ms": res.deadline_ms,
        "error": res.error,
    }
    if res.is_success:
        human = _HUMAN_OK[operation].format(token=res.fencing_token, deadline=res.deadline_ms)
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)
