"""How `AspenClient.request` reports a failure after retrying. Pure: each peer's transport is
replaced by a script of what a node would answer (error frames built by the real codec)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aspen.api import messages as m
from aspen.api.codec import encode_error, encode_response
from aspen.api.errors import NotInitializedError, OutcomeUnknownError
from aspen.client import AspenClient
from aspen.rpc.errors import RpcTimeoutError
from aspen.rpc.ticket import ClusterTicket, TicketPeer

Answer = Callable[[float], Awaitable[bytes]]


class ScriptedPeer:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.calls = 0

    async def request(self, _frame: bytes, *, timeout: float) -> bytes:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return await answer(timeout)

    def describe(self) -> str:
        return "scripted node"

    async def aclose(self) -> None:
        pass


async def not_initialized(_timeout: float) -> bytes:
    return encode_error(NotInitializedError())


async def no_answer(timeout: float) -> bytes:
    await asyncio.sleep(timeout)  # a node that does not answer uses up the attempt's whole budget
    raise RpcTimeoutError(f"no response within {timeout}s")


def client_with(peer: ScriptedPeer, timeout: float) -> AspenClient:
    ticket = ClusterTicket(cookie="c", peers=(TicketPeer(endpoint_id="ab" * 32, addrs=("127.0.0.1:1",)),))
    client = AspenClient(ticket, timeout=timeout)
    client._peers = [peer]  # type: ignore[list-item]
    return client


def test_a_read_that_runs_out_of_time_after_not_initialized_says_not_initialized() -> None:
    # The node answered NOT_INITIALIZED, the client backed off, and its last attempt got no answer
    # before the deadline: the user must hear the node's answer, not a bare timeout.
    peer = ScriptedPeer([not_initialized, no_answer])
    with pytest.raises(NotInitializedError):
        asyncio.run(client_with(peer, timeout=0.5).read("x"))
    assert peer.calls == 2


def test_a_read_with_no_answer_at_all_times_out() -> None:
    peer = ScriptedPeer([no_answer])
    with pytest.raises(OutcomeUnknownError):
        asyncio.run(client_with(peer, timeout=0.3).read("x"))


def test_an_answer_after_not_initialized_is_returned() -> None:
    async def found(_timeout: float) -> bytes:
        return encode_response(m.ReadResult(value=b"v", was_found=True))

    peer = ScriptedPeer([not_initialized, found])
    res = asyncio.run(client_with(peer, timeout=2.0).read("x"))
    assert res.value == b"v" and peer.calls == 2
