"""Printer of `aspen-cli semaphore …` (the commands are derived from the declarations in
aspen.api.semaphore): JSON `{"operation","name","is_success","permits_acquired","available",
"max_permits","capacity_permits","retry_after_ms","error"}` (the capacity under both names, as the
original's CLI prints it); exit 1 when `is_success` is false."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output


@printer("semaphore")
def semaphore_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "name": request.name,
        "is_success": res.is_success,
        "permits_acquired": res.permits_acquired,
        "available": res.available,
        "max_permits": res.capacity_permits,
        "capacity_permits": res.capacity_permits,
        "retry_after_ms": res.retry_after_ms,
        "error": res.error,
    }
    ratio = f"{res.available}/{res.capacity_permits}"
    if res.is_success:
        human = {
            "acquire": f"Acquired {res.permits_acquired} permits ({ratio} available)",
            "try_acquire": f"Acquired {res.permits_acquired} permits ({ratio} available)",
            "release": f"Released ({ratio} available)",
        }.get(operation, f"Available: {ratio}")
    elif res.error is None:
        human = f"No permits available. Retry after {res.retry_after_ms} ms"
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)
