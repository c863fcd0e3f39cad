"""ClusterTicket encoding and strict decoding of untrusted ticket text."""

from __future__ import annotations

import base64

import msgpack
import pytest

from aspen.rpc.ticket import ClusterTicket, TicketError, TicketPeer, parse_host_port

ID_A = "a" * 64
ID_B = "0123456789abcdef" * 4


def _raw(body: object) -> str:
    packed = msgpack.packb(body, use_bin_type=True)
    return "aspen" + base64.b32encode(packed).decode().rstrip("=").lower()


def _ticket() -> ClusterTicket:
    return ClusterTicket(
        cookie="sekrit",
        peers=(
            TicketPeer(ID_A, ("127.0.0.1:7777", "[::1]:7777")),
            TicketPeer(ID_B, ("node-2.example:7001",)),
        ),
    )


def test_round_trip() -> None:
    ticket = _ticket()
    text = ticket.encode()
    assert text.startswith("aspen")
    assert text == text.lower() and "=" not in text
    assert ClusterTicket.decode(text) == ticket


def test_wire_layout() -> None:
    text = _ticket().encode()
    b32 = text[5:].upper()
    body = msgpack.unpackb(base64.b32decode(b32 + "=" * (-len(b32) % 8)))
    assert body == {
        "c": "sekrit",
        "p": [{"i": ID_A, "a": ["127.0.0.1:7777", "[::1]:7777"]}, {"i": ID_B, "a": ["node-2.example:7001"]}],
    }


def test_decode_tolerates_whitespace_and_case() -> None:
    text = _ticket().encode()
    wrapped = "  \n" + "\n".join(text[i : i + 20] for i in range(0, len(text), 20)) + " \t\n"
    assert ClusterTicket.decode(wrapped) == _ticket()
    assert ClusterTicket.decode(text.upper()) == _ticket()


def test_encode_truncates_extras() -> None:
    peers = tuple(
        TicketPeer(f"{i:064x}", tuple(f"127.0.0.1:{7000 + j}" for j in range(10))) for i in range(20)
    )
    decoded = ClusterTicket.decode(ClusterTicket("c", peers).encode())
    assert len(decoded.peers) == 16
    assert all(len(p.addrs) == 8 for p in decoded.peers)
    assert decoded.peers[0].addrs == tuple(f"127.0.0.1:{7000 + j}" for j in range(8))


def test_peer_without_addrs_is_allowed() -> None:
    ticket = ClusterTicket("c", (TicketPeer(ID_A, ()),))
    assert ClusterTicket.decode(ticket.encode()) == ticket


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "must start with"),
        ("iroh" + "a" * 20, "must start with"),
        ("aspen", "no content"),
        ("aspen!!!!", "not valid base32"),
        ("aspen1", "not valid base32"),
        ("a" * 200_000, "too long"),
    ],
)
def test_rejects_malformed_text(text: str, match: str) -> None:
    with pytest.raises(TicketError, match=match):
        ClusterTicket.decode(text)


def test_rejects_non_msgpack() -> None:
    text = "aspen" + base64.b32encode(b"\xc1\xc1\xc1").decode().rstrip("=").lower()
    with pytest.raises(TicketError, match="msgpack"):
        ClusterTicket.decode(text)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([1, 2], "must be a map"),
        ({"p": [{"i": ID_A, "a": []}]}, "cookie"),
        ({"c": "", "p": [{"i": ID_A, "a": []}]}, "non-empty"),
        ({"c": "x" * 1025, "p": [{"i": ID_A, "a": []}]}, "1024 bytes"),
        ({"c": "é" * 513, "p": [{"i": ID_A, "a": []}]}, "1024 bytes"),
        ({"c": "c"}, "peer list"),
        ({"c": "c", "p": []}, "1-16 peers"),
        ({"c": "c", "p": [{"i": ID_A, "a": []}] * 17}, "1-16 peers"),
        ({"c": "c", "p": ["x"]}, "not a map"),
        ({"c": "c", "p": [{"a": []}]}, "endpoint id"),
        ({"c": "c", "p": [{"i": "a" * 63, "a": []}]}, "64 lowercase hex"),
        ({"c": "c", "p": [{"i": "g" * 64, "a": []}]}, "64 lowercase hex"),
        ({"c": "c", "p": [{"i": "A" * 64, "a": []}]}, "64 lowercase hex"),
        ({"c": "c", "p": [{"i": ID_A, "a": "127.0.0.1:1"}]}, "list of strings"),
        ({"c": "c", "p": [{"i": ID_A, "a": [1]}]}, "list of strings"),
        ({"c": "c", "p": [{"i": ID_A, "a": ["127.0.0.1:1"] * 9}]}, "at most 8"),
        ({"c": "c", "p": [{"i": ID_A, "a": ["127.0.0.1"]}]}, "host:port"),
        ({"c": "c", "p": [{"i": ID_A, "a": ["127.0.0.1:0"]}]}, "out of range"),
        ({"c": "c", "p": [{"i": ID_A, "a": ["127.0.0.1:65536"]}]}, "out of range"),
        ({"c": "c", "p": [{"i": ID_A, "a": ["::1:7777"]}]}, r"\[host\]:port"),
    ],
)
def test_rejects_invalid_fields(body: object, match: str) -> None:
    with pytest.raises(TicketError, match=match):
        ClusterTicket.decode(_raw(body))


def test_ticket_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        ClusterTicket.decode("nope")


def test_constructor_validates() -> None:
    with pytest.raises(TicketError):
        TicketPeer("xyz", ())
    with pytest.raises(TicketError):
        ClusterTicket("c", ())


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:7777", ("127.0.0.1", 7777)),
        ("[::1]:7777", ("::1", 7777)),
        ("[fe80::1%eth0]:1", ("fe80::1%eth0", 1)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(addr) == expected


@pytest.mark.parametrize(
    "addr",
    ["", ":7777", "host", "host:", "host:abc", "host:-1", "[::1]7777", "[::1", "[]:1", "a b:1", "h:١٢"],
)
def test_parse_host_port_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(addr)
