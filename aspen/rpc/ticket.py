"""Cluster tickets: one copy-pasteable string that tells a client how to reach a cluster.

Format: ``"aspen"`` + lowercase RFC 4648 base32 (no padding) of the msgpack map
``{"c": cookie, "p": [{"i": endpoint_id, "a": ["host:port", ...]}, ...]}``.
Base32 rather than base64 so tickets survive case-folding, URLs and
double-click selection.  Decoding treats the text as untrusted input: every
field is checked and any problem raises :class:`TicketError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = [
    "MAX_ADDRS_PER_PEER",
    "MAX_COOKIE_BYTES",
    "MAX_PEERS",
    "TICKET_PREFIX",
    "ClusterTicket",
    "TicketError",
    "TicketPeer",
    "parse_host_port",
]

TICKET_PREFIX = "aspen"
MAX_PEERS = 16
MAX_ADDRS_PER_PEER = 8
MAX_COOKIE_BYTES = 1024
# Bound the decoder's work before msgpack sees anything: 16 peers x 8 addrs of
# at most ~270 bytes each, plus a cookie, fits comfortably.
_MAX_TICKET_CHARS = 96 * 1024

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Hostnames and IPv4 literals; IPv6 literals are handled separately in brackets.
_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}(%[A-Za-z0-9_.-]{1,32})?")


class TicketError(ValueError):
    """The ticket text or one of its fields is malformed."""


def parse_host_port(addr: str) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[v6]:port"`` into ``(host, port)``.

    IPv6 hosts are returned without brackets.  Raises ``ValueError`` (a
    :class:`TicketError` when called on ticket content) on anything else.
    """
    if not isinstance(addr, str):
        raise ValueError(f"address must be a string, got {type(addr).__name__}")
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or addr[end + 1 : end + 2] != ":":
            raise ValueError(f"bad address {addr!r}: expected [ipv6]:port")
        host, port_text = addr[1:end], addr[end + 2 :]
        if not _IPV6.fullmatch(host) or ":" not in host:
            raise ValueError(f"bad address {addr!r}: {host!r} is not an IPv6 literal")
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise ValueError(f"bad address {addr!r}: expected host:port")
        if ":" in host:
            raise ValueError(f"bad address {addr!r}: IPv6 hosts must be written as [host]:port")
        if not _HOST.fullmatch(host):
            raise ValueError(f"bad address {addr!r}: invalid host {host!r}")
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"bad address {addr!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"bad address {addr!r}: port {port} out of range 1-65535")
    return host, port


@dataclass(frozen=True)
class TicketPeer:
    """One cluster member: its pinned endpoint id and where to try reaching it."""

    endpoint_id: str
    addrs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint_id, str) or not _HEX64.fullmatch(self.endpoint_id):
            raise TicketError(f"bad endpoint id {self.endpoint_id!r}: expected 64 lowercase hex characters")
        if not isinstance(self.addrs, tuple):
            raise TicketError(f"addrs must be a tuple, got {type(self.addrs).__name__}")
        for addr in self.addrs:
            try:
                parse_host_port(addr)
            except ValueError as exc:
                raise TicketError(f"peer {self.endpoint_id[:16]}…: {exc}") from None


@dataclass(frozen=True)
class ClusterTicket:
    """A cluster cookie plus the peers a client may contact."""

    cookie: str
    peers: tuple[TicketPeer, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.cookie, str) or not self.cookie:
            raise TicketError("cookie must be a non-empty string")
        if len(self.cookie.encode("utf-8")) > MAX_COOKIE_BYTES:
            raise TicketError(f"cookie is longer than {MAX_COOKIE_BYTES} bytes")
        if not isinstance(self.peers, tuple) or not self.peers:
            raise TicketError("a ticket needs at least one peer")

    def encode(self) -> str:
        """Serialize; peers beyond 16 and addresses beyond 8 per peer are dropped."""
        body = {
            "c": self.cookie,
            "p": [
                {"i": peer.endpoint_id, "a": list(peer.addrs[:MAX_ADDRS_PER_PEER])}
                for peer in self.peers[:MAX_PEERS]
            ],
        }
        packed: bytes = msgpack.packb(body, use_bin_type=True)
        return TICKET_PREFIX + base64.b32encode(packed).decode("ascii").rstrip("=").lower()

    @classmethod
    def decode(cls, text: str) -> ClusterTicket:
        """Parse and validate ticket text; raises :class:`TicketError`."""
        if not isinstance(text, str):
            raise TicketError(f"ticket must be a string, got {type(text).__name__}")
        # Drop all whitespace, not only at the ends: tickets get line-wrapped in
        # terminals and emails.
        compact = "".join(text.split())
        if len(compact) > _MAX_TICKET_CHARS:
            raise TicketError(f"ticket is too long ({len(compact)} characters)")
        if not compact.lower().startswith(TICKET_PREFIX):
            raise TicketError(f"ticket must start with {TICKET_PREFIX!r}")
        b32 = compact[len(TICKET_PREFIX) :].upper()
        if not b32:
            raise TicketError("ticket has no content after the prefix")
        try:
            raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
        except (binascii.Error, ValueError) as exc:
            raise TicketError(f"ticket is not valid base32: {exc}") from None
        try:
            body = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise TicketError(f"ticket content is not valid msgpack: {exc}") from None
        return cls._from_body(body)

    @classmethod
    def _from_body(cls, body: Any) -> ClusterTicket:
        if not isinstance(body, dict):
            raise TicketError("ticket content must be a map")
        cookie = body.get("c")
        if not isinstance(cookie, str):
            raise TicketError("ticket cookie 'c' is missing or not a string")
        raw_peers = body.get("p")
        if not isinstance(raw_peers, list):
            raise TicketError("ticket peer list 'p' is missing or not a list")
        if not 1 <= len(raw_peers) <= MAX_PEERS:
            raise TicketError(f"ticket must list 1-{MAX_PEERS} peers, got {len(raw_peers)}")
        peers: list[TicketPeer] = []
        for index, raw_peer in enumerate(raw_peers):
            if not isinstance(raw_peer, dict):
                raise TicketError(f"peer #{index} is not a map")
            endpoint_id = raw_peer.get("i")
            addrs = raw_peer.get("a")
            if not isinstance(endpoint_id, str):
                raise TicketError(f"peer #{index}: endpoint id 'i' is missing or not a string")
            if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
                raise TicketError(f"peer #{index}: addresses 'a' must be a list of strings")
            if len(addrs) > MAX_ADDRS_PER_PEER:
                raise TicketError(
                    f"peer #{index}: at most {MAX_ADDRS_PER_PEER} addresses allowed, got {len(addrs)}"
                )
            try:
                peers.append(TicketPeer(endpoint_id=endpoint_id, addrs=tuple(addrs)))
            except TicketError as exc:
                raise TicketError(f"peer #{index}: {exc}") from None
        return cls(cookie=cookie, peers=tuple(peers))
