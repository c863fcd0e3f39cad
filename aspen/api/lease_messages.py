"""Wire schema of the lease requests and results.

Same conventions as `aspen.api.messages` (whose unions include these): a msgpack map tagged by
`type`, validated strictly once at the edge. Lease ids are u64 on the wire; the state machine accepts
1..2^63-1 and answers a precise error for anything else, and `lease_id` 0 or absent on a grant asks
the cluster to choose one.

`LeaseTimeToLive` and `LeaseList` are linearizable reads (a ReadIndex round, like `ReadKey`) unless
`stale` is set; remaining time is computed by the answering node from its own clock against the
absolute expiry the leader stored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from aspen.api.limits import MAX_LEASE_TTL_SECONDS
from aspen.api.wire import U64
from aspen.api.wire import WireModel as _Model


def _ttl_fits(ttl: int) -> int:
    # Only what the node could not even receive is refused here (an int beyond 64 bits cannot be
    # encoded); 0 and negative TTLs go through to get the node's precise error result.
    if not -(2**63) <= ttl <= MAX_LEASE_TTL_SECONDS:
        raise PydanticCustomError(
            "lease_ttl",
            "lease ttl must be between 1 and {high} seconds (got {got})",
            {"high": MAX_LEASE_TTL_SECONDS, "got": ttl},
        )
    return ttl


# --------------------------------------------------------------------------------------- requests --
class LeaseGrant(_Model):
    type: Literal["LeaseGrant"] = "LeaseGrant"
    #: Signed so that 0 and negative values reach the node and get a precise error, not a schema one.
    ttl_seconds: Annotated[int, AfterValidator(_ttl_fits)]
    #: 0 or None: the cluster chooses the id.
    lease_id: U64 | None = None


class LeaseRevoke(_Model):
    type: Literal["LeaseRevoke"] = "LeaseRevoke"
    lease_id: U64


class LeaseKeepalive(_Model):
    type: Literal["LeaseKeepalive"] = "LeaseKeepalive"
    lease_id: U64


class LeaseTimeToLive(_Model):
    type: Literal["LeaseTimeToLive"] = "LeaseTimeToLive"
    lease_id: U64
    include_keys: bool = False
    stale: bool = False


class LeaseList(_Model):
    type: Literal["LeaseList"] = "LeaseList"
    stale: bool = False


class WriteKeyWithLease(_Model):
    """Set `key` attached to `lease_id` (answered with a `WriteResult`)."""

    type: Literal["WriteKeyWithLease"] = "WriteKeyWithLease"
    key: str
    value: bytes
    lease_id: U64


LeaseRequest = LeaseGrant | LeaseRevoke | LeaseKeepalive | LeaseTimeToLive | LeaseList | WriteKeyWithLease

#: Lease requests that change state: a follower forwards them to the leader like other writes.
LEASE_WRITES = frozenset({"LeaseGrant", "LeaseRevoke", "LeaseKeepalive", "WriteKeyWithLease"})
#: Lease requests a client may safely retry on another node after an ambiguous failure.
LEASE_READS = frozenset({"LeaseTimeToLive", "LeaseList"})


# -------------------------------------------------------------------------------------- responses --
class LeaseGrantResult(_Model):
    type: Literal["LeaseGrantResult"] = "LeaseGrantResult"
    is_success: bool
    lease_id: int | None = None
    ttl_seconds: int | None = None
    error: str | None = None


class LeaseRevokeResult(_Model):
    type: Literal["LeaseRevokeResult"] = "LeaseRevokeResult"
    is_success: bool
    keys_deleted: int | None = None
    error: str | None = None


class LeaseKeepaliveResult(_Model):
    type: Literal["LeaseKeepaliveResult"] = "LeaseKeepaliveResult"
    is_success: bool
    lease_id: int | None = None
    ttl_seconds: int | None = None
    error: str | None = None


class LeaseTimeToLiveResult(_Model):
    type: Literal["LeaseTimeToLiveResult"] = "LeaseTimeToLiveResult"
    is_success: bool
    lease_id: int | None = None
    granted_ttl_seconds: int | None = None
    #: Whole seconds left by the answering node's clock, rounded down (< 1 s left reports 0).
    remaining_ttl_seconds: int | None = None
    #: Attached keys, sorted; only when `include_keys` was asked.
    keys: list[str] | None = None
    error: str | None = None


class LeaseListEntry(_Model):
    lease_id: int
    granted_ttl_seconds: int
    remaining_ttl_seconds: int
    attached_keys: int


class LeaseListResult(_Model):
    type: Literal["LeaseListResult"] = "LeaseListResult"
    is_success: bool
    leases: list[LeaseListEntry] | None = None
    error: str | None = None


LeaseResponse = (
    LeaseGrantResult | LeaseRevokeResult | LeaseKeepaliveResult | LeaseTimeToLiveResult | LeaseListResult
)

__all__ = [
    "LEASE_READS",
    "LEASE_WRITES",
    "LeaseGrant",
    "LeaseGrantResult",
    "LeaseKeepalive",
    "LeaseKeepaliveResult",
    "LeaseList",
    "LeaseListEntry",
    "LeaseListResult",
    "LeaseRequest",
    "LeaseResponse",
    "LeaseRevoke",
    "LeaseRevokeResult",
    "LeaseTimeToLive",
    "LeaseTimeToLiveResult",
    "WriteKeyWithLease",
]
