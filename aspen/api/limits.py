"""Wire limits shared by client and node."""

from __future__ import annotations

#: Version of the request envelope; a node refuses envelopes of another version.
PROTOCOL_VERSION = 1
#: Largest request or response frame.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Most keys in one `BatchRead`, and the largest `ScanKeys.limit`. The same values as the state
#: machine's `MAX_BATCH_OPS` and `MAX_SCAN_RESULTS` (aspen.kv.limits; a unit test keeps them equal),
#: repeated here because the wire models, and so the CLI, must not import the state machine.
MAX_BATCH_READ_KEYS = 100
MAX_SCAN_LIMIT = 10_000
#: Longest lease TTL, the state machine's `MAX_LEASE_TTL_SECONDS` (same reason as above).
MAX_LEASE_TTL_SECONDS = 9_000_000_000
