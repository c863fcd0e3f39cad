"""The peer listener's handshake, after TLS (client = the dialling node, server = the listening node)::

    server -> client: 32-byte random nonce          (sent as soon as the connection is accepted)
    client -> server: kind (1 byte)                  (sent as soon as the pin check passed)
    client -> server: [u32 len][u64 node_id][32-byte public key][64-byte Ed25519 signature][u16 port]
    server -> client: 0x01 (accepted)                (or the server closes the connection)

The signature is over ``b"aspen-raft-auth-v1" + secret + nonce + server_key + client_key + kind +
port``, so it is fresh (nonce), bound to this server (a server cannot replay it to another member),
to the channel kind, and proves the cluster cookie (`secret`, never sent). An *open* channel (for
callers with no node key) skips the member part: right after the kind byte it checks the caller's
own credential. The context string is part of the wire format: it keeps its historical name.
"""

from __future__ import annotations

import struct

__all__ = [
    "ACCEPTED",
    "AUTH",
    "AUTH_CONTEXT",
    "HANDSHAKE_TIMEOUT",
    "LEN",
    "MAX_HANDSHAKE_FRAME",
    "NONCE_SIZE",
    "HandshakeError",
    "auth_message",
    "check_kind",
]

AUTH_CONTEXT = b"aspen-raft-auth-v1"
NONCE_SIZE = 32
HANDSHAKE_TIMEOUT = 5.0
MAX_HANDSHAKE_FRAME = 256
ACCEPTED = b"\x01"
LEN = struct.Struct(">I")
#: node id, public key, signature, the port the client listens on (its host is the source address).
AUTH = struct.Struct(">Q32s64sH")


class HandshakeError(Exception):
    """The peer is not who we expected, or did not follow the handshake."""


def auth_message(
    nonce: bytes, server_key: bytes, client_key: bytes, kind: int, secret: bytes, listen_port: int
) -> bytes:
    # `secret` (derived from the cluster cookie) is never sent: a signature over a message that
    # contains it proves the signer knows the cookie, which is what lets a node that is not yet a
    # member admit its future leader.
    return (
        AUTH_CONTEXT
        + secret
        + nonce
        + server_key
        + client_key
        + bytes((kind,))
        + listen_port.to_bytes(2, "big")
    )


def check_kind(kind: int) -> None:
    if not 1 < kind < 256:
        raise ValueError(f"channel kind must be in 2..255, got {kind}")
