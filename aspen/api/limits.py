"""Wire limits shared by client and node."""

from __future__ import annotations

#: Version of the request envelope; a node refuses envelopes of another version.
PROTOCOL_VERSION = 1
#: Largest request or response frame (reference §4.7).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: ALPN of the client RPC.
CLIENT_ALPN = "aspen-client"
