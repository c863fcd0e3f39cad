"""Base pieces of the coordination wire models kept in their own modules (`aspen.api.semaphore`,
`aspen.api.queue`, `aspen.api.barrier`, `aspen.api.registry`): the strict model configuration of
`messages._Model` (which these modules cannot import: `messages` imports them) and integer ranges."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]

#: The longest a node waits inside one blocking request (semaphore acquire, dequeue-wait, barrier
#: enter/leave). It stays well below the follower→leader forwarding timeout and the client's
#: per-request budget; a longer wait is the client re-issuing the request with the time left.
MAX_WAIT_PER_REQUEST_MS = 15_000


class WireModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


__all__ = ["MAX_WAIT_PER_REQUEST_MS", "U32", "U64", "WireModel"]
