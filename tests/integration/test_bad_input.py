"""Bad input gets a precise error and the node keeps serving (issue: single-node, must show 4)."""

from __future__ import annotations

import asyncio
import os

import msgpack
import pytest
from harness import NodeProcess, cli

from aspen.api import messages as m
from aspen.api.codec import decode_response
from aspen.client import AspenClient
from aspen.rpc.auth import proof_key
from aspen.rpc.client import RpcClient
from aspen.rpc.ticket import ClusterTicket, TicketPeer, parse_host_port

pytestmark = pytest.mark.integration


def _still_serving(node: NodeProcess) -> None:
    assert cli(node.ticket, "kv", "set", "alive", "yes").code == 0
    assert cli(node.ticket, "kv", "get", "alive").stdout.strip() == "yes"


def test_empty_key_is_rejected(node: NodeProcess) -> None:
    res = cli(node.ticket, "--json", "kv", "set", "", "v")
    assert res.code == 1 and res.json()["error"] == "key cannot be empty"
    res = cli(node.ticket, "--json", "kv", "delete", "")
    assert res.code == 1 and res.json()["error"] == "key cannot be empty"
    _still_serving(node)


def test_oversized_key_is_rejected(node: NodeProcess) -> None:
    assert cli(node.ticket, "kv", "set", "k" * 1024, "v").code == 0
    res = cli(node.ticket, "--json", "kv", "set", "k" * 1025, "v")
    assert res.code == 1 and res.json()["error"] == "key size 1025 exceeds maximum of 1024 bytes"
    _still_serving(node)


def test_oversized_value_is_rejected(node: NodeProcess, tmp_path) -> None:
    ok, big = tmp_path / "ok", tmp_path / "big"
    ok.write_bytes(b"x" * 1_048_576)
    big.write_bytes(b"x" * 1_048_577)
    assert cli(node.ticket, "kv", "set", "v", "--file", str(ok)).code == 0
    res = cli(node.ticket, "--json", "kv", "set", "v2", "--file", str(big))
    assert res.code == 1 and res.json()["error"] == "value size 1048577 exceeds maximum of 1048576 bytes"
    assert cli(node.ticket, "--json", "kv", "get", "v2").json()["does_exist"] is False
    _still_serving(node)


def test_batch_of_101_operations_is_rejected_by_the_node(node: NodeProcess) -> None:
    async def go() -> m.BatchWriteResult:
        async with AspenClient(node.ticket) as client:
            return await client.batch_write([m.SetOperation(key=f"b{i}", value=b"v") for i in range(101)])

    res = asyncio.run(go())
    assert not res.is_success and res.error == "batch size 101 exceeds maximum of 100 keys"
    assert cli(node.ticket, "--json", "kv", "get", "b0").json()["does_exist"] is False
    _still_serving(node)


async def _raw(node: NodeProcess, frame: bytes) -> m.Response:
    ticket = ClusterTicket.decode(node.ticket)
    peer = ticket.peers[0]
    key = proof_key(ticket.cookie)
    client = RpcClient(peer.endpoint_id, [parse_host_port(a) for a in peer.addrs], auth_key=key)
    try:
        return decode_response(await client.request(frame, timeout=10))
    finally:
        await client.aclose()


def test_random_bytes_on_a_stream_get_invalid_request(node: NodeProcess) -> None:
    for frame in (os.urandom(64), b"", b"\xc1", msgpack.packb([1, 2, 3])):
        res = asyncio.run(_raw(node, frame))
        assert isinstance(res, m.Error) and res.code in ("INVALID_REQUEST", "UNAUTHORIZED"), res
    _still_serving(node)


def test_unknown_variant_gets_invalid_request(node: NodeProcess) -> None:
    frame = msgpack.packb({"v": 1, "req": {"type": "LaunchRockets", "key": "x"}})
    res = asyncio.run(_raw(node, frame))
    assert isinstance(res, m.Error) and res.code == "INVALID_REQUEST"
    assert "unknown request variant 'LaunchRockets'" in res.message
    wrong_type = msgpack.packb({"v": 1, "req": {"type": "WriteKey", "key": "k", "value": 12}})
    res = asyncio.run(_raw(node, wrong_type))
    assert isinstance(res, m.Error) and res.code == "INVALID_REQUEST" and "value" in res.message
    _still_serving(node)


def test_wrong_cookie_is_unauthorized_and_changes_nothing(node: NodeProcess) -> None:
    good = ClusterTicket.decode(node.ticket)
    bad = ClusterTicket(cookie="not-the-cookie", peers=good.peers).encode()
    res = cli(bad, "kv", "set", "intruder", "x")
    assert res.code == 1 and "UNAUTHORIZED" in res.stderr
    assert cli(node.ticket, "--json", "kv", "get", "intruder").json()["does_exist"] is False


def test_ticket_with_another_endpoint_id_is_refused(node: NodeProcess) -> None:
    good = ClusterTicket.decode(node.ticket)
    impostor = ClusterTicket(cookie=good.cookie, peers=(TicketPeer("ab" * 32, good.peers[0].addrs),)).encode()
    res = cli(impostor, "kv", "set", "k", "v", "--timeout", "5000")
    assert res.code == 1 and "endpoint id mismatch" in res.stderr
    assert cli(node.ticket, "--json", "kv", "get", "k").json()["does_exist"] is False


def test_malformed_ticket_is_a_clear_error() -> None:
    res = cli("aspen!!!notbase32", "kv", "get", "k")
    assert res.code == 1 and "invalid ticket" in res.stderr
