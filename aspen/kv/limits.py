"""Size limits of the KV state machine, shared by the node (which rejects early) and `apply` (which
re-checks, because a log entry may have been proposed by an older or buggy node).

Invariant: these are part of the replicated semantics. Every replica must use the same values, or
replicas could disagree about whether a logged command succeeded; change them only together with a
log format version bump.
"""

from __future__ import annotations

from typing import Final

#: Maximum key length in bytes, measured on the UTF-8 encoding (not in code points).
MAX_KEY_SIZE: Final = 1024
#: Maximum value length in bytes (1 MiB).
MAX_VALUE_SIZE: Final = 1_048_576
#: Maximum number of operations in one batch; for a conditional batch, conditions + operations.
MAX_BATCH_OPS: Final = 100
#: Scan page size when the client does not give a limit.
DEFAULT_SCAN_LIMIT: Final = 1000
#: Upper clamp of a client-supplied scan limit.
MAX_SCAN_RESULTS: Final = 10_000
#: Smallest and largest lease id (a positive signed 64-bit integer, so it fits every encoding).
MIN_LEASE_ID: Final = 1
MAX_LEASE_ID: Final = 2**63 - 1
#: Longest lease TTL (etcd's bound): keeps `now_ms + ttl` far inside 64 bits on every encoding.
MAX_LEASE_TTL_SECONDS: Final = 9_000_000_000
#: Most leases one `LeaseRevokeExpired` command may name: bounds the work of one expiry round.
MAX_EXPIRED_PER_COMMAND: Final = 100

__all__ = [
    "DEFAULT_SCAN_LIMIT",
    "MAX_BATCH_OPS",
    "MAX_EXPIRED_PER_COMMAND",
    "MAX_KEY_SIZE",
    "MAX_LEASE_ID",
    "MAX_LEASE_TTL_SECONDS",
    "MAX_SCAN_RESULTS",
    "MAX_VALUE_SIZE",
    "MIN_LEASE_ID",
]
