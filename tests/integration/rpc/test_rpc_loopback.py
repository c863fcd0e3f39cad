"""RpcServer + RpcClient over real UDP sockets on 127.0.0.1.

Every test runs its own event loop via ``asyncio.run`` under an overall
deadline; waits poll a condition with a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from aspen.rpc import (
    CONN_ERR_AUTH_DEADLINE,
    CONN_ERR_EVICTED,
    CONN_ERR_TOO_MANY_CONNECTIONS,
    MAX_MESSAGE,
    STREAM_ERR_HANDLER,
    STREAM_ERR_OVERSIZE,
    AdmissionLimits,
    EndpointMismatchError,
    NodeIdentity,
    PeerInfo,
    RpcClient,
    RpcConnectError,
    RpcConnection,
    RpcRefusedError,
    RpcServer,
    RpcStreamResetError,
    RpcTimeoutError,
    RpcTransportError,
    proof_key,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
HOST = "127.0.0.1"
KEY = proof_key("loopback-test-cookie")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def echo(data: bytes, peer: PeerInfo) -> bytes:
    return data


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before deadline")
        await asyncio.sleep(0.005)  # polling interval, not synchronisation


async def serve(handler: Callable[[bytes, PeerInfo], Awaitable[Any]] = echo, **kw: Any) -> RpcServer:
    kw.setdefault("auth_key", KEY)
    server = RpcServer(kw.pop("identity", None) or NodeIdentity.generate(), handler, HOST, 0, **kw)
    await server.start()
    return server


async def connect(server: RpcServer, endpoint_id: str | None = None) -> RpcConnection:
    return await RpcConnection.connect(
        HOST, server.port, endpoint_id or server.identity.endpoint_id, auth_key=KEY, timeout=5.0
    )


def test_round_trip_and_peer_info() -> None:
    async def main() -> None:
        seen: list[PeerInfo] = []

        async def handler(data: bytes, peer: PeerInfo) -> bytes:
            seen.append(peer)
            return b"re:" + data

        server = await serve(handler)
        try:
            async with await connect(server) as conn:
                assert await conn.request(b"hello", 5.0) == b"re:hello"
                assert await conn.request(b"", 5.0) == b"re:"
                assert await conn.request(b"again", 5.0) == b"re:again"
            assert len({p.connection_id for p in seen}) == 1
            assert seen[0].remote_addr[0] == HOST
            assert seen[0].remote_addr[1] > 0
        finally:
            await server.close()

    run(main())


def _record_datagrams(transport: Any) -> list[int]:
    """Has `transport` record the size of every datagram it sends from now on, in the list returned."""
    assert transport is not None
    send = transport.sendto
    sent: list[int] = []

    def recording(data: bytes, addr: Any = None) -> None:
        sent.append(len(data))
        send(data, addr)

    transport.sendto = recording
    return sent


async def _datagrams_for_slow_requests(side: str, requests: int = 40) -> int:
    """Datagrams `side` ("client" or "server") sends for `requests` one-at-a-time requests that
    each take longer than aioquic's 1 ms ACK delay to answer, like a replicated write."""

    async def slow_echo(data: bytes, peer: PeerInfo) -> bytes:
        await asyncio.sleep(0.004)
        return data

    server = await serve(slow_echo)
    try:
        async with await connect(server) as conn:
            assert await conn.request(b"warm", 5.0) == b"warm"
            sent = _record_datagrams(conn._protocol._transport if side == "client" else server._transport)
            for i in range(requests):
                assert await conn.request(b"r%d" % i, 5.0) == b"r%d" % i
            return len(sent)
    finally:
        await server.close()


def test_each_request_carries_the_ack_for_the_previous_response() -> None:
    """The client sends one datagram per request: the ACK for a response rides on the next request
    instead of going out alone from the ACK timer (which would make it two)."""
    sent = run(_datagrams_for_slow_requests("client"))
    assert sent <= 40 + 4, f"{sent} datagrams for 40 requests"


def test_the_answer_to_a_slow_request_carries_its_ack() -> None:
    """The server sends one datagram per request, its response with the ACK for the request in it,
    instead of the ACK alone first (measured without: 80 for 40)."""
    sent = run(_datagrams_for_slow_requests("server"))
    assert sent <= 40 + 4, f"{sent} datagrams for 40 requests"


def test_a_request_slower_than_the_held_ack_is_acknowledged_before_its_answer() -> None:
    """The server holds a request's ACK for its answer only so long (within the 25 ms the client's
    loss detection allows for): a handler still busy after that does not keep it from going out."""

    async def main() -> None:
        release = asyncio.Event()

        async def blocked(data: bytes, peer: PeerInfo) -> bytes:
            if data == b"slow":
                await release.wait()
            return data

        server = await serve(blocked)
        try:
            async with await connect(server) as conn:
                for _ in range(3):  # past the handshake's follow-ups
                    assert await conn.request(b"warm", 5.0) == b"warm"
                sent = _record_datagrams(server._transport)
                pending = asyncio.ensure_future(conn.request(b"slow", 10.0))
                await wait_until(lambda: len(sent) >= 1)  # the ACK, while the handler still waits
                assert not pending.done()
                release.set()
                assert await pending == b"slow"
        finally:
            await server.close()

    run(main())


def test_200_concurrent_requests_on_one_connection() -> None:
    async def main() -> None:
        server = await serve()
        try:
            async with await connect(server) as conn:
                payloads = [f"req-{i}".encode() * (i % 7 + 1) for i in range(200)]
                results = await asyncio.gather(*(conn.request(p, 20.0) for p in payloads))
                assert results == payloads
        finally:
            await server.close()

    run(main())


def test_stream_limit_bounds_concurrent_handlers() -> None:
    async def main() -> None:
        active = 0
        peak = 0
        release = asyncio.Event()

        async def slow(data: bytes, peer: PeerInfo) -> bytes:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await release.wait()
                return data
            finally:
                active -= 1

        server = await serve(slow, max_streams_per_connection=4)
        try:
            async with await connect(server) as conn:
                tasks = [asyncio.ensure_future(conn.request(b"%d" % i, 20.0)) for i in range(12)]
                await wait_until(lambda: active == 4)
                release.set()
                assert await asyncio.gather(*tasks) == [b"%d" % i for i in range(12)]
                assert peak == 4  # the extra 8 waited in the client's QUIC stack
        finally:
            await server.close()

    run(main())


def test_10_mib_request_and_response() -> None:
    async def main() -> None:
        server = await serve()
        try:
            async with await connect(server) as conn:
                big = bytes(range(256)) * (10 * 1024 * 1024 // 256)
                assert await conn.request(big, 60.0) == big
        finally:
            await server.close()

    run(main(), timeout=90)


def test_oversize_request_gets_oversize_response_and_connection_survives() -> None:
    async def main() -> None:
        calls = 0

        async def handler(data: bytes, peer: PeerInfo) -> bytes:
            nonlocal calls
            calls += 1
            return data

        server = await serve(handler, oversize_response=b"ERR:too-large")
        try:
            async with await connect(server) as conn:
                assert await conn.request(b"x" * (MAX_MESSAGE + 1), 60.0) == b"ERR:too-large"
                assert calls == 0
                # Exactly MAX_MESSAGE is still fine.
                assert len(await conn.request(b"y" * MAX_MESSAGE, 60.0)) == MAX_MESSAGE
                assert await conn.request(b"small", 5.0) == b"small"
        finally:
            await server.close()

    run(main(), timeout=120)


def test_oversize_without_response_resets_stream() -> None:
    async def main() -> None:
        server = await serve()
        try:
            async with await connect(server) as conn:
                with pytest.raises(RpcStreamResetError) as info:
                    await conn.request(b"x" * (MAX_MESSAGE + 1024), 60.0)
                assert info.value.error_code == STREAM_ERR_OVERSIZE
                assert await conn.request(b"ok", 5.0) == b"ok"
        finally:
            await server.close()

    run(main(), timeout=90)


def test_buffered_bytes_limit_answers_busy() -> None:
    async def main() -> None:
        server = await serve(max_buffered_bytes=MAX_MESSAGE, busy_response=b"ERR:busy")
        try:
            async with await connect(server) as conn:
                big = b"b" * (10 * 1024 * 1024)
                results = await asyncio.gather(conn.request(big, 60.0), conn.request(big, 60.0))
                assert b"ERR:busy" in results
                assert all(r in (b"ERR:busy", big) for r in results)
        finally:
            await server.close()

    run(main(), timeout=90)


def test_handler_exception_does_not_kill_server() -> None:
    async def main() -> None:
        async def handler(data: bytes, peer: PeerInfo) -> bytes:
            if data == b"boom":
                raise RuntimeError("handler bug")
            return data

        server = await serve(handler)
        try:
            async with await connect(server) as conn:
                with pytest.raises(RpcStreamResetError) as info:
                    await conn.request(b"boom", 5.0)
                assert info.value.error_code == STREAM_ERR_HANDLER
                assert await conn.request(b"next", 5.0) == b"next"
            async with await connect(server) as conn2:
                assert await conn2.request(b"new connection", 5.0) == b"new connection"
        finally:
            await server.close()

    run(main())


def test_wrong_endpoint_id_is_rejected() -> None:
    async def main() -> None:
        server = await serve()
        other = NodeIdentity.generate().endpoint_id
        try:
            with pytest.raises(EndpointMismatchError) as info:
                await connect(server, endpoint_id=other)
            assert info.value.expected == other
            assert info.value.got == server.identity.endpoint_id
            async with RpcClient(other, [(HOST, server.port)], auth_key=KEY, connect_timeout=5.0) as client:
                with pytest.raises(EndpointMismatchError):
                    await client.request(b"never sent", 5.0)
            # Pinning is by key, so upper-case hex of the right key still matches.
            async with await connect(server, server.identity.endpoint_id.upper()) as conn:
                assert await conn.request(b"ok", 5.0) == b"ok"
        finally:
            await server.close()

    run(main())


def test_server_close_fails_requests_quickly() -> None:
    async def main() -> None:
        never = asyncio.Event()

        async def hang(data: bytes, peer: PeerInfo) -> bytes:
            await never.wait()
            return data

        server = await serve(hang)
        conn = await connect(server)
        try:
            pending = asyncio.ensure_future(conn.request(b"stuck", 30.0))
            await wait_until(lambda: server.active_handlers == 1)
            start = time.monotonic()
            await server.close()
            with pytest.raises(RpcTransportError):
                await pending
            assert time.monotonic() - start < 2.0
            assert conn.is_closed
            with pytest.raises(RpcTransportError):
                await conn.request(b"after close", 5.0)
            # A fresh connect to the dead port fails fast (ICMP unreachable), not at the timeout.
            start = time.monotonic()
            with pytest.raises(RpcTransportError):
                await RpcConnection.connect(
                    HOST, server.port, server.identity.endpoint_id, auth_key=KEY, timeout=10.0
                )
            assert time.monotonic() - start < 5.0
        finally:
            await conn.aclose()

    run(main())


def test_timeout_raises_and_connection_stays_usable() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def handler(data: bytes, peer: PeerInfo) -> bytes:
            if data == b"slow":
                await release.wait()
            return data

        server = await serve(handler)
        try:
            async with await connect(server) as conn:
                start = time.monotonic()
                with pytest.raises(RpcTimeoutError):
                    await conn.request(b"slow", 0.2)
                assert time.monotonic() - start < 2.0
                release.set()
                assert await conn.request(b"fast", 5.0) == b"fast"
                assert conn.in_flight == 0
        finally:
            await server.close()

    run(main())


def test_client_reconnects_after_server_restart() -> None:
    async def main() -> None:
        identity = NodeIdentity.generate()
        server = await serve(identity=identity)
        port = server.port
        async with RpcClient(
            identity.endpoint_id, [(HOST, port)], auth_key=KEY, connect_timeout=5.0
        ) as client:
            assert await client.request(b"one", 5.0) == b"one"
            await server.close()
            with pytest.raises(RpcTransportError):
                await client.request(b"down", 2.0)
            server = RpcServer(identity, echo, HOST, port, auth_key=KEY)
            await server.start()
            try:
                assert await client.request(b"two", 5.0) == b"two"
            finally:
                await server.close()

    run(main())


def test_client_falls_back_to_next_address() -> None:
    async def main() -> None:
        server = await serve()
        dead = await serve()
        dead_port = dead.port
        await dead.close()
        try:
            addrs = [(HOST, dead_port), (HOST, server.port)]
            async with RpcClient(
                server.identity.endpoint_id, addrs, auth_key=KEY, connect_timeout=3.0
            ) as client:
                assert await client.request(b"hi", 10.0) == b"hi"
        finally:
            await server.close()

    run(main())


def test_max_connections_refuses_extra() -> None:
    async def main() -> None:
        server = await serve(max_connections=1)
        try:
            async with await connect(server) as first:
                assert await first.request(b"1", 5.0) == b"1"
                # Refused before anything was served on it: a connect error, safe to retry.
                with pytest.raises(RpcRefusedError) as info:
                    await connect(server)
                assert info.value.error_code == CONN_ERR_TOO_MANY_CONNECTIONS
                async with RpcClient(server.identity.endpoint_id, [(HOST, server.port)], auth_key=KEY) as c:
                    with pytest.raises(RpcConnectError):
                        await c.request(b"2", 5.0)
                assert server.connection_count == 1
                assert await first.request(b"still", 5.0) == b"still"
        finally:
            await server.close()

    run(main())


def test_on_disconnect_hook() -> None:
    async def main() -> None:
        gone: list[PeerInfo] = []
        server = await serve(on_disconnect=gone.append)
        try:
            conn = await connect(server)
            assert await conn.request(b"x", 5.0) == b"x"
            await conn.aclose()
            await wait_until(lambda: len(gone) == 1)
            assert server.connection_count == 0
        finally:
            await server.close()

    run(main())


def test_streaming_response() -> None:
    async def main() -> None:
        chunk = b"c" * (256 * 1024)

        async def handler(data: bytes, peer: PeerInfo) -> AsyncIterator[bytes]:
            async def gen() -> AsyncIterator[bytes]:
                for _ in range(int(data)):
                    yield chunk

            return gen()

        server = await serve(handler)
        try:
            async with await connect(server) as conn:
                assert await conn.request(b"12", 30.0) == chunk * 12
                with pytest.raises(RpcTransportError, match="exceeds"):
                    await conn.request(b"12", 30.0, max_response=1024 * 1024)
                assert await conn.request(b"1", 5.0) == chunk
        finally:
            await server.close()

    run(main())


# ------------------------------------------------------------------ authentication, admission --
UNAUTHORIZED = b"unauthorized"


def test_wrong_proof_is_answered_before_the_body_is_buffered() -> None:
    async def main() -> None:
        calls: list[int] = []

        async def handler(data: bytes, peer: PeerInfo) -> bytes:
            calls.append(len(data))
            return data

        server = await serve(handler, unauthorized_response=UNAUTHORIZED)
        try:
            wrong = proof_key("another cookie")
            async with await RpcConnection.connect(
                HOST, server.port, server.identity.endpoint_id, auth_key=wrong, timeout=5.0
            ) as conn:
                assert await conn.request(b"x", 5.0) == UNAUTHORIZED
                # A maximal body behind a wrong header is refused after its first 34 bytes: the
                # answer comes long before 16 MiB could have crossed, and nothing is buffered.
                pending = asyncio.ensure_future(conn.request(b"\x90" * MAX_MESSAGE, 30.0))
                assert await pending == UNAUTHORIZED
                assert server._connections and all(not c._buffers for c in server._connections)
            async with await connect(server) as good:
                assert await good.request(b"ok", 5.0) == b"ok"
            assert calls == [2]
        finally:
            await server.close()

    run(main())


def test_a_proof_is_worthless_on_another_connection() -> None:
    async def main() -> None:
        server = await serve(unauthorized_response=UNAUTHORIZED)
        try:
            async with await connect(server) as first, await connect(server) as second:
                assert first.header != second.header  # each connection has its own challenge
                assert await first.request(b"a", 5.0) == b"a"
                second.header = first.header  # replay the first connection's proof on the second
                assert await second.request(b"b", 5.0) == UNAUTHORIZED
        finally:
            await server.close()

    run(main())


def test_unauthenticated_connection_is_closed_at_the_deadline() -> None:
    async def main() -> None:
        server = await serve(limits=AdmissionLimits(auth_deadline=0.3))
        try:
            idle = await connect(server)
            used = await connect(server)
            assert await used.request(b"in time", 5.0) == b"in time"
            await wait_until(lambda: idle.is_closed, timeout=10.0)
            with pytest.raises(RpcRefusedError) as info:
                await idle.request(b"late", 5.0)
            assert info.value.error_code == CONN_ERR_AUTH_DEADLINE
            await idle.aclose()
            assert not used.is_closed  # authenticated connections are not subject to it
            assert await used.request(b"still", 5.0) == b"still"
            await used.aclose()
        finally:
            await server.close()

    run(main())


def test_unauthenticated_connections_are_evicted_oldest_first_and_never_take_reserved_slots() -> None:
    async def main() -> None:
        limits = AdmissionLimits(max_unauthenticated=2, max_unauthenticated_per_address=2)
        server = await serve(limits=limits, max_connections=4)
        try:
            authed = [await connect(server) for _ in range(2)]
            for c in authed:
                assert await c.request(b"mine", 5.0) == b"mine"
            idle = [await connect(server) for _ in range(2)]
            assert server.unauthenticated_count == 2 and server.connection_count == 4
            # Full: a newcomer evicts the oldest unauthenticated connection, never an authenticated one.
            newcomer = await connect(server)
            await wait_until(lambda: idle[0].is_closed)
            with pytest.raises(RpcRefusedError) as info:
                await idle[0].request(b"x", 5.0)
            assert info.value.error_code == CONN_ERR_EVICTED
            assert not idle[1].is_closed
            assert await newcomer.request(b"in", 5.0) == b"in"
            assert all(not c.is_closed for c in authed)
            for c in [*authed, *idle, newcomer]:
                await c.aclose()
        finally:
            await server.close()

    run(main())


def test_connections_per_address_are_limited() -> None:
    async def main() -> None:
        server = await serve(limits=AdmissionLimits(max_per_address=2))
        try:
            conns = [await connect(server) for _ in range(2)]
            for c in conns:
                assert await c.request(b"a", 5.0) == b"a"
            with pytest.raises(RpcRefusedError) as info:
                await connect(server)
            assert info.value.error_code == CONN_ERR_TOO_MANY_CONNECTIONS
            for c in conns:
                await c.aclose()
            await wait_until(lambda: server.connection_count == 0)
            async with await connect(server) as again:
                assert await again.request(b"b", 5.0) == b"b"
        finally:
            await server.close()

    run(main())
