"""Printer of `aspen-cli counter …` and `aspen-cli sequence …` (the commands are derived from the
declarations in aspen.api.coordination): JSON `{"key","operation","is_success","value","error"}`,
human output the value; exit 1 when `is_success` is false (a failed cas, an exhausted sequence, a
rejected input)."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output


@printer("counter")
def counter_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "key": request.key,
        "operation": operation,
        "is_success": res.is_success,
        "value": res.value,
        "error": res.error,
    }
    human = str(res.value) if res.is_success else f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)
