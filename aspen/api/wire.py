"""Base pieces of every wire model module (`aspen.api.messages` and the modules it unites: blobs,
leases, coordination, locks, semaphore, queue, barrier, registry): the one strict model
configuration and the integer ranges. Its own module so that none of them imports another."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# u64 on the wire; Python ints are unbounded, so bound them here rather than deep inside.
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
NodeIdField = Annotated[int, Field(ge=1, le=2**64 - 1)]

#: The longest a node waits inside one blocking request (semaphore acquire, dequeue-wait, barrier
#: enter/leave). It stays well below the follower→leader forwarding timeout and the client's
#: per-request budget; a longer wait is the client re-issuing the request with the time left.
MAX_WAIT_PER_REQUEST_MS = 15_000


class WireModel(BaseModel):
    """Strict (no coercion), closed (unknown fields refused) and immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


__all__ = ["I64", "MAX_WAIT_PER_REQUEST_MS", "U32", "U64", "NodeIdField", "WireModel"]
