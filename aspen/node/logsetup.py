"""Structured logs with structlog: a console renderer on a TTY, JSON lines otherwise (journald, files).

Standard-library loggers (the Raft driver, the RPC layer) go through the same processors, so every
line of a node has one format. Logs go to stderr; stdout is left to the program's own output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

#: (request id, operation) of the request the current task serves. One plain ContextVar set per
#: request: structlog's bound_contextvars cost ~10 % of the leader's CPU at high request rates.
#: Each request runs in its own task, hence its own context, so a value never leaks to another.
REQUEST: ContextVar[tuple[str | None, str] | None] = ContextVar("aspen_request", default=None)


def add_request(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Add `rid` and `operation` of the request being served to every line logged while serving it."""
    current = REQUEST.get()
    if current is not None:
        event.setdefault("rid", current[0])
        event.setdefault("operation", current[1])
    return event


def configure(level: str = "info", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("quic").setLevel(logging.WARNING)  # aioquic is chatty at INFO
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
