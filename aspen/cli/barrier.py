"""Printer of `aspen-cli barrier …` (the commands are derived from the declarations in
aspen.api.barrier): JSON `{"operation","name","is_success","current_count","required_count",
"phase","error"}`, human `OK (c/r participants, phase: p)`; exit 1 when `is_success` is false (a
timeout, a rejected input)."""

from __future__ import annotations

from typing import Any

from aspen.cli.operations import printer
from aspen.cli.output import Output


@printer("barrier")
def barrier_output(request: Any, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "name": request.name,
        "is_success": res.is_success,
        "current_count": res.current_count,
        "required_count": res.required_count,
        "phase": res.phase,
        "error": res.error,
    }
    human = (
        f"OK ({res.current_count}/{res.required_count} participants, phase: {res.phase})"
        if res.is_success
        else f"{operation} failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)
