"""Client authentication by cluster cookie.

A client proves it knows the cluster cookie by sending
``HMAC-SHA256(key=cookie, msg=b"aspen-client-auth-v1")`` over the QUIC/TLS
channel.  The channel is pinned to the node's Ed25519 key (see
:mod:`aspen.rpc.client`), so the proof is only ever revealed to a genuine
cluster member, and the cookie itself never goes on the wire.  The proof is a
static bearer token for that reason: a replay would need the TLS session keys.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["AUTH_CONTEXT", "cookie_proof", "verify_proof"]

# Domain separation: the same cookie may key other MACs (e.g. blake3-derived
# keys elsewhere); a versioned context keeps this proof from matching them.
AUTH_CONTEXT = b"aspen-client-auth-v1"


def cookie_proof(cookie: str) -> bytes:
    """Return the 32-byte proof that the holder knows ``cookie``."""
    return hmac.new(cookie.encode("utf-8"), AUTH_CONTEXT, hashlib.sha256).digest()


def verify_proof(expected: bytes, got: object) -> bool:
    """Constant-time comparison; ``got`` comes off the wire, so any type is accepted (and rejected)."""
    if not isinstance(got, bytes | bytearray | memoryview):
        return False
    return hmac.compare_digest(expected, bytes(got))
