"""Client authentication by cluster cookie, bound to one QUIC connection.

Wire (ALPN ``aspen-client``, see docs/protocol.md §1 and §2):

* When the node admits a connection it opens a unidirectional stream and sends a **challenge**:
  ``MAGIC, VERSION`` and 32 random bytes (the connection's nonce), then FIN.
* Every request stream starts with a fixed **header**: ``MAGIC, VERSION`` and the 32-byte
  **proof**, followed by the request body.  ``proof = BLAKE3(key = K, nonce)`` where
  ``K = BLAKE3-derive-key(PROOF_KEY_CONTEXT, cookie)``.

Why this shape:

* *Authenticate before you spend.*  The proof sits at a fixed offset ahead of the body, so the
  server checks it (constant time, 34 bytes in) before it buffers or decodes anything else; a
  stream with a wrong header costs it 34 bytes and a short error frame.
* *No replay outside the connection.*  Threat model: the TLS channel is pinned to the node's
  Ed25519 key (aspen.rpc.client), so only a cluster member ever sees a proof; but a proof can
  still leak later (a key-log file, a core dump, a packet capture decrypted afterwards, a buggy
  log line).  Binding it to a nonce the node chose for that one connection makes a leaked proof
  useless on any other connection, to any node.  A TLS exporter secret (RFC 8446 §7.5) would bind
  just as well without the extra half round trip, but neither aioquic 1.x nor qh3 exposes one
  (computing it would mean reading their private key schedule); a server challenge needs only
  public stream APIs and moves to any QUIC stack unchanged.  Within one connection the proof is
  the same for every request: QUIC/TLS already stops an outsider from replaying inside it.
* The cookie itself never goes on the wire, and ``K`` is domain-separated from every other key the
  cookie derives (Raft channel, blob tokens).
"""

from __future__ import annotations

import hmac
import os

import blake3

__all__ = [
    "CHALLENGE_BYTES",
    "HEADER_BYTES",
    "MAGIC",
    "PROOF_BYTES",
    "PROOF_KEY_CONTEXT",
    "VERSION",
    "HeaderCheck",
    "challenge_frame",
    "check_header",
    "connection_proof",
    "new_nonce",
    "parse_challenge",
    "proof_key",
    "request_header",
]

#: First byte of challenges and request headers: 0xC1 is the one byte msgpack never uses, so a
#: frame of the old format (a bare msgpack map) can never pass for a header.
MAGIC = 0xC1
VERSION = 2
PROOF_BYTES = 32
CHALLENGE_BYTES = 32
HEADER_BYTES = 2 + PROOF_BYTES
CHALLENGE_FRAME_BYTES = 2 + CHALLENGE_BYTES
#: BLAKE3 key-derivation context for the proof key; versioned so a later scheme never collides.
PROOF_KEY_CONTEXT = "aspen 2026-12 client request proof v2"


def proof_key(cookie: str) -> bytes:
    """The 32-byte key a client proves with, derived from the cluster cookie."""
    return blake3.blake3(cookie.encode("utf-8"), derive_key_context=PROOF_KEY_CONTEXT).digest()


def new_nonce() -> bytes:
    return os.urandom(CHALLENGE_BYTES)


def challenge_frame(nonce: bytes) -> bytes:
    if len(nonce) != CHALLENGE_BYTES:
        raise ValueError(f"nonce must be {CHALLENGE_BYTES} bytes")
    return bytes((MAGIC, VERSION)) + nonce


def parse_challenge(frame: bytes) -> bytes:
    """The nonce in a challenge frame; ValueError if it is not one (e.g. another protocol version)."""
    if len(frame) != CHALLENGE_FRAME_BYTES or frame[0] != MAGIC or frame[1] != VERSION:
        raise ValueError(f"not an aspen v{VERSION} challenge ({len(frame)} bytes)")
    return bytes(frame[2:])


def connection_proof(key: bytes, nonce: bytes) -> bytes:
    """The proof for every request on the connection whose challenge carried `nonce`."""
    return blake3.blake3(nonce, key=key).digest()


def request_header(proof: bytes) -> bytes:
    if len(proof) != PROOF_BYTES:
        raise ValueError(f"proof must be {PROOF_BYTES} bytes")
    return bytes((MAGIC, VERSION)) + proof


class HeaderCheck:
    """Outcomes of `check_header` (plain ints: checked on every request)."""

    OK = 0
    BAD_VERSION = 1
    BAD_PROOF = 2


def check_header(expected_proof: bytes, head: bytes | bytearray | memoryview) -> int:
    """Check the first `HEADER_BYTES` of a request stream (`head` must be at least that long).

    The proof is compared in constant time; the magic/version bytes are public, so they may fail
    fast."""
    if head[0] != MAGIC or head[1] != VERSION:
        return HeaderCheck.BAD_VERSION
    if not hmac.compare_digest(expected_proof, bytes(head[2:HEADER_BYTES])):
        return HeaderCheck.BAD_PROOF
    return HeaderCheck.OK
