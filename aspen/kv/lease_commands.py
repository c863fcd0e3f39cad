"""Lease commands, their results, and the read-side view of a lease.

A lease is a TTL'd handle that keys can be attached to; when it is revoked (explicitly, or by the
leader once it has expired) every attached key is deleted in the same apply step.

Invariants:
- Time enters only as `now_ms`, a field chosen by the proposer (the leader's wall clock, Unix ms).
  `apply` compares stored absolute expiries with the command's `now_ms` and never reads a clock, so
  every replica reaches the same verdict for the same log entry.
- A lease id is a positive signed 64-bit integer. `LeaseGrant.lease_id` None asks the state machine
  to choose one: the next unused id of a counter kept in the replicated state, so the choice is
  deterministic on every replica and never collides with an id granted before.
- Like the KV commands, constructing one never raises; `validate` judges it and `apply` re-checks.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Keepalive of a lease that does not exist (never granted, revoked, or expired and swept).
ERR_LEASE_NOT_FOUND = "lease not found"
#: Keepalive of a lease whose expiry has passed but whose revocation is not applied yet.
ERR_LEASE_EXPIRED = "lease expired"
ERR_LEASE_IDS_EXHAUSTED = "no unused lease id left; grant with an explicit id"


def lease_not_found(lease_id: int) -> str:
    return f"lease {lease_id} not found"


def lease_expired(lease_id: int) -> str:
    return f"lease {lease_id} expired"


def lease_exists(lease_id: int) -> str:
    return f"lease {lease_id} already exists"


# --------------------------------------------------------------------------------------------------
# Write commands (replicated through the log)


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """Create a lease living `ttl_seconds` from `now_ms`; id `lease_id`, or chosen when None."""

    ttl_seconds: int
    now_ms: int
    lease_id: int | None = None


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    """Delete the lease and every key attached to it. An unknown lease is a success with 0 keys."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class LeaseKeepalive:
    """Extend an unexpired lease to `now_ms + ttl_seconds` (its original TTL)."""

    lease_id: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeExpired:
    """Revoke those of `lease_ids` that are expired at `now_ms` (proposed by the leader's sweeper).

    The ids are the leader's candidates; apply re-checks each against `now_ms`, so a lease kept
    alive after the sweeper looked (a keepalive ordered before this entry) survives.
    """

    lease_ids: tuple[int, ...]
    now_ms: int


@dataclass(frozen=True, slots=True)
class WriteWithLease:
    """Set `key` to `value` attached to `lease_id`, which must exist and be unexpired at `now_ms`."""

    key: str
    value: bytes
    lease_id: int
    now_ms: int


LeaseCommand = LeaseGrant | LeaseRevoke | LeaseKeepalive | LeaseRevokeExpired | WriteWithLease

# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    is_success: bool
    lease_id: int | None = None
    ttl_seconds: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseRevokeResult:
    is_success: bool
    keys_deleted: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseKeepaliveResult:
    is_success: bool
    lease_id: int | None = None
    ttl_seconds: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseRevokeExpiredResult:
    #: The leases this command removed, in the order given; already-gone or renewed ones are skipped.
    revoked: tuple[int, ...]
    keys_deleted: int


LeaseCommandResult = LeaseGrantResult | LeaseRevokeResult | LeaseKeepaliveResult | LeaseRevokeExpiredResult

# --------------------------------------------------------------------------------------------------
# Read-side view (queries are local; the node computes remaining time from its own clock)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: int
    ttl_seconds: int
    #: Absolute expiry, Unix ms, as set by the last grant or keepalive (from the leader's clock).
    expires_at_ms: int
    key_count: int

    def remaining_ms(self, now_ms: int) -> int:
        """Milliseconds left at `now_ms` (0 once expired)."""
        return max(0, self.expires_at_ms - now_ms)

    def is_expired(self, now_ms: int) -> bool:
        return self.expires_at_ms <= now_ms


__all__ = [
    "ERR_LEASE_EXPIRED",
    "ERR_LEASE_IDS_EXHAUSTED",
    "ERR_LEASE_NOT_FOUND",
    "LeaseCommand",
    "LeaseCommandResult",
    "LeaseGrant",
    "LeaseGrantResult",
    "LeaseInfo",
    "LeaseKeepalive",
    "LeaseKeepaliveResult",
    "LeaseRevoke",
    "LeaseRevokeExpired",
    "LeaseRevokeExpiredResult",
    "LeaseRevokeResult",
    "WriteWithLease",
    "lease_exists",
    "lease_expired",
    "lease_not_found",
]
