"""Printer of `aspen-cli ratelimit …` (the commands are derived from the declarations in
aspen.api.locks): JSON `{"operation","key","is_success","tokens_remaining","retry_after_ms",
"error"}`; human `OK (N tokens remaining)` / `Rate limited. Retry after N ms`; exit 1 when
`is_success` is false. `--rate` must be a positive finite number: refused before anything is sent
(exit 1)."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output


@printer("ratelimit")
def rate_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "key": request.key,
        "is_success": res.is_success,
        "tokens_remaining": res.tokens_remaining,
        "retry_after_ms": res.retry_after_ms,
        "error": res.error,
    }
    if res.is_success:
        human = f"OK ({res.tokens_remaining} tokens remaining)"
    elif res.retry_after_ms is not None:
        human = f"Rate limited. Retry after {res.retry_after_ms} ms"
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)
