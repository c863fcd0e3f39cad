"""A small blocking wrapper over `AspenClient` for scripts: same methods, no `await`.

It owns a private event loop, so it must not be used from inside a running loop.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

from aspen.client.client import DEFAULT_TIMEOUT_S, AspenClient
from aspen.rpc.loop import new_event_loop
from aspen.rpc.ticket import ClusterTicket


class SyncAspenClient:
    def __init__(self, ticket: str | ClusterTicket | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._loop = new_event_loop()
        self._client = AspenClient(ticket, timeout=timeout)

    def __enter__(self) -> SyncAspenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return call
