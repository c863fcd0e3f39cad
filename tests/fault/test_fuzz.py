"""Fuzzing the auth header, the wire decoder and every request handler of a live node (see fuzz.py
for the oracle).

For every frame: the answer decodes to a valid response (or the stream is reset), a frame with a bad
header is answered UNAUTHORIZED, an invalid body INVALID_REQUEST, neither changes the state hash, and
the node stays up and answers Ping. Frames with a bad header go on a connection that never
authenticates (pre-auth garbage), the others on an authenticated one. The long run also has a
legitimate client in its own process reading throughout, and reports its worst stall. Also: a
client that opens streams and never finishes them is bounded by the per-connection limits and does
not block other clients.

The CI run sends `CI_FRAMES` frames; `--fuzz-frames N` sends N (must-show: 100,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fuzz import (
    AUTHENTIC,
    Frame,
    FuzzStats,
    Verdict,
    boundary_frames,
    classify,
    make_frame,
    pack,
    send,
    should_send,
)
from harness import NodeProcess, cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aspen.api import messages as m
from aspen.api.codec import decode_response, encode_request
from aspen.client import AspenClient
from aspen.rpc.auth import proof_key
from aspen.rpc.client import RpcConnection, _Pending
from aspen.rpc.errors import RpcRefusedError, RpcTransportError
from aspen.rpc.ticket import ClusterTicket, parse_host_port

pytestmark = [pytest.mark.fault, pytest.mark.integration]

T = TypeVar("T")

CI_FRAMES = 2500
#: Frames of the non-slow long run (with the concurrent client); `--fuzz-frames` overrides it.
CI_LONG_FRAMES = 20_000


class LiveNode:
    """One initialised node and an event loop of our own to drive raw RPCs from sync test code:
    `conn` is an authenticated connection, `garbage` one that never authenticates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = NodeProcess(node_id=1, data_dir=root / "n1").start()
        res = cli(self.node.ticket, "cluster", "init")
        assert res.code == 0, res.stderr
        self.ticket = ClusterTicket.decode(self.node.ticket)
        self.key = proof_key(self.ticket.cookie)
        self.peer = self.ticket.peers[0]
        self.addr = [parse_host_port(a) for a in self.peer.addrs]
        self.loop = asyncio.new_event_loop()
        self.conn = self.run(self.connect())
        self.garbage = self.run(self.connect())
        self.reconnects = 0

    async def connect(self) -> RpcConnection:
        host, port = self.addr[0]
        return await RpcConnection.connect(host, port, self.peer.endpoint_id, auth_key=self.key, timeout=10)

    async def usable(self, frame: Frame) -> RpcConnection:
        """The connection `frame` goes on, replaced if the node closed it (an idle unauthenticated
        connection is closed at its deadline)."""
        if frame.authentic:
            if self.conn.is_closed:
                self.conn = await self.connect()
                self.reconnects += 1
            return self.conn
        if self.garbage.is_closed:
            self.garbage = await self.connect()
            self.reconnects += 1
        return self.garbage

    async def send(self, frame: Frame, verdict: Verdict, stats: FuzzStats, timeout: float = 30.0) -> None:
        for _ in range(3):  # bounded: a replaced connection may be closed again before it is used
            conn = await self.usable(frame)
            try:
                await send(conn, frame, verdict, stats, timeout)
                return
            except RpcRefusedError:
                if not frame.authentic:
                    # The node closed the unauthenticated connection (its pre-auth byte cap or
                    # deadline): a refusal to spend on garbage is a correct answer to it.
                    stats.refused += 1
                    return
            except RpcTransportError:
                if not conn.is_closed:
                    raise
        raise AssertionError("connections to the node keep closing")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def request(self, req: m.Request) -> m.Response:
        async def go() -> bytes:
            conn = await self.usable(Frame(AUTHENTIC, b""))
            return await conn.request(encode_request(req), timeout=30)

        return decode_response(self.run(go()))

    def state(self) -> tuple[int, str]:
        h = self.request(m.GetStateHash())
        assert isinstance(h, m.StateHash), h
        return h.applied_index, h.state_hash

    def assert_alive(self) -> None:
        assert self.node.proc is not None and self.node.proc.poll() is None, self.node.log()[-3000:]
        assert isinstance(self.request(m.Ping()), m.Pong)

    def close(self) -> None:
        self.run(self.conn.aclose())
        self.run(self.garbage.aclose())
        self.loop.close()
        self.node.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    node = LiveNode(tmp_path_factory.mktemp("fuzz"))
    try:
        yield node
    finally:
        node.close()


# ------------------------------------------------------------------------------ hypothesis --
@settings(
    max_examples=CI_FRAMES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_and_random_frames_never_crash_and_invalid_ones_change_nothing(
    live: LiveNode, rng: random.Random
) -> None:
    frame = make_frame(rng)
    verdict = classify(frame)
    if not should_send(verdict, allow_mutating=True):
        return
    before = live.state() if not verdict.valid else None
    live.run(live.send(frame, verdict, FuzzStats()))
    if before is not None:
        assert live.state() == before, f"invalid frame changed state: {frame[:200]!r}"


def test_unknown_variants_and_wrong_types_get_precise_errors(live: LiveNode) -> None:
    before = live.state()
    bad = [
        {"type": "NoSuchRequest"},
        {"type": "WriteKey", "key": "a", "value": "not-bytes"},  # strict: no str→bytes coercion
        {"type": "ReadKey", "key": b"bytes-key"},
        {"type": "ScanKeys", "limit": 2**32},
        {"type": "ScanKeys", "limit": -1},
        {"type": "ChangeMembership", "members": [0]},
        {"type": "BatchRead", "keys": "abc"},
        {"type": "ReadKey", "key": "a", "surprise": 1},
    ]
    for body in bad:
        stats = FuzzStats()
        live.run(live.send(Frame(AUTHENTIC, pack({"v": 1, "req": body})), Verdict(False), stats))
        assert stats.by_code == {"INVALID_REQUEST": 1}, (body, stats)
    assert live.state() == before
    live.assert_alive()


def test_boundary_sizes_are_refused_or_served_without_harm(live: LiveNode) -> None:
    before = live.state()
    for frame in boundary_frames():
        oversize = frame.authentic and len(frame.body) > 16 * 1024 * 1024
        verdict = Verdict(False) if oversize else classify(frame)
        live.run(live.send(frame, verdict, FuzzStats(), timeout=60))
    assert live.state() == before
    # Valid requests at the value-size limit still work, one byte over is a domain refusal.
    ok = live.request(m.WriteKey(key="big", value=b"x" * 1_048_576))
    assert isinstance(ok, m.WriteResult) and ok.is_success
    over = live.request(m.WriteKey(key="big2", value=b"x" * 1_048_577))
    assert isinstance(over, m.WriteResult) and not over.is_success
    live.assert_alive()


# ----------------------------------------------------------------------------- slow client --
def test_client_that_never_finishes_its_streams_is_bounded_and_blocks_no_one(live: LiveNode) -> None:
    """Streams opened and never FIN-ed count against the connection's stream and buffered-bytes
    limits (256 streams, 64 MiB): past them the node refuses with SERVICE_UNAVAILABLE instead of
    buffering, other connections are served meanwhile, and closing the connection releases all."""
    peer = live.ticket.peers[0]
    host, port = live.addr[0]

    async def scenario() -> tuple[int, int, bool, bool]:
        slow = await RpcConnection.connect(host, port, peer.endpoint_id, auth_key=live.key)
        proto = slow._protocol
        quic = proto._quic
        # Authenticated (the right header), then a map header that never completes.
        chunk = slow.header + b"\x85" + os.urandom(1024 * 1024 - 1 - len(slow.header))
        futures = []
        # 80 streams x 1 MiB > 64 MiB buffered limit; none is ever finished.
        for _ in range(80):
            sid = quic.get_next_available_stream_id()
            quic.send_stream_data(sid, chunk, end_stream=False)
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            proto._pending[sid] = _Pending(future=fut, limit=1 << 20)
            futures.append(fut)
            proto.transmit()
            await asyncio.sleep(0)  # let the datagrams go out between streams
        # Meanwhile another client is served (writes and linearizable reads).
        async with AspenClient(live.node.ticket, timeout=20) as other:
            res = await other.set("during-slow", b"yes")
            served = res.is_success and await other.get("during-slow") == b"yes"
        # The streams over the limit were answered "busy" and not buffered.
        # 64 MiB through one aioquic connection takes seconds, many more on a busy machine.
        await asyncio.wait(futures, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        busy = 0
        for f in futures:
            if f.done() and not f.exception():
                resp = decode_response(f.result())
                if isinstance(resp, m.Error) and resp.code == "SERVICE_UNAVAILABLE":
                    busy += 1
        assert live.node.proc is not None
        rss_kib = _rss_kib(live.node.proc.pid)
        await slow.aclose()
        async with AspenClient(live.node.ticket, timeout=20) as other:
            after = (await other.set("after-slow", b"yes")).is_success
        return busy, rss_kib, served, after

    busy, rss_kib, served, after = live.run(scenario())
    assert served, "another client was blocked by the slow one"
    assert busy >= 1, "no stream was refused past the buffered-bytes limit"
    # The node holds at most the 64 MiB per-connection limit for it, plus its own baseline.
    assert rss_kib < 400 * 1024, f"node RSS {rss_kib} KiB"
    assert after
    live.assert_alive()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------- long --
def fuzz_many(live: LiveNode, frames: int, seed: int, concurrency: int = 32) -> FuzzStats:
    """Send `frames` fuzz frames, `concurrency` at a time. Valid state-changing requests are not sent,
    so the state hash must be exactly the same at the end."""
    rng = random.Random(seed)
    stats = FuzzStats()
    before = live.state()
    started = time.monotonic()

    async def go() -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one(frame: Frame, verdict: Verdict) -> None:
            async with sem:
                await live.send(frame, verdict, stats)

        batch: list[asyncio.Task[None]] = []
        produced = 0
        for _ in range(frames * 4):  # bounded even if most candidates are filtered out
            if produced >= frames:
                break
            frame = make_frame(rng)
            verdict = classify(frame)
            if not should_send(verdict, allow_mutating=False):
                stats.skipped += 1
                continue
            produced += 1
            batch.append(asyncio.ensure_future(one(frame, verdict)))
            if len(batch) >= 1000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)

    live.run(go())
    stats.seconds = time.monotonic() - started
    assert live.state() == before, "fuzz frames changed the state"
    live.assert_alive()
    return stats


#: Must-show 3: no legitimate call may stall longer than this while the fuzzer runs.
MAX_STALL_S = 1.0


def fuzz_with_probe(live: LiveNode, frames: int, seed: int) -> tuple[FuzzStats, list[float], list[str]]:
    """`fuzz_many` while a legitimate client in its own process reads throughout; returns the stats,
    the probe's latencies and its errors."""
    work = live.root / f"probe-{seed}-{frames}"
    work.mkdir()
    ticket, stop, out = work / "ticket", work / "stop", work / "out.json"
    ticket.write_text(live.node.ticket)
    probe = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("probe.py")), str(ticket), str(stop), str(out), "7200"],
        stdin=subprocess.DEVNULL,
    )
    try:
        stats = fuzz_many(live, frames, seed)
    finally:
        stop.touch()
        try:
            probe.wait(timeout=60)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait(timeout=10)
    result = json.loads(out.read_text())
    return stats, result["latencies"], result["errors"]


def test_many_frames_with_a_concurrent_legitimate_client(
    live: LiveNode, request: pytest.FixtureRequest
) -> None:
    frames = request.config.getoption("--fuzz-frames") or CI_LONG_FRAMES
    seed = int(os.environ.get("ASPEN_FUZZ_SEED", "1"))
    stats, latencies, errors = fuzz_with_probe(live, frames, seed)
    worst = max(latencies, default=0.0)
    print(
        f"fuzz: {frames} frames in {stats.seconds:.0f}s ({stats.preauth} pre-auth, {stats.invalid} invalid, "
        f"{stats.resets} resets, by code {stats.by_code}); probe: {len(latencies)} reads, worst "
        f"{worst * 1000:.0f} ms (call #{latencies.index(worst) if latencies else -1}), {len(errors)} errors; "
        f"reconnects {live.reconnects}"
    )
    assert stats.sent >= frames
    assert stats.preauth > 0
    assert latencies, "the legitimate client made no call"
    assert not errors, errors[:5]
    assert worst <= MAX_STALL_S, f"legitimate client stalled {worst:.2f}s"


@pytest.mark.slow
@pytest.mark.timeout(3600)  # far beyond the suite's 300 s default: this one sends 100k frames
def test_one_hundred_thousand_frames(live: LiveNode) -> None:
    stats, latencies, errors = fuzz_with_probe(
        live, 100_000, seed=int(os.environ.get("ASPEN_FUZZ_SEED", "1"))
    )
    worst = max(latencies, default=0.0)
    print(f"fuzz: {stats}; probe: {len(latencies)} reads, worst {worst * 1000:.0f} ms, {len(errors)} errors")
    assert stats.sent >= 100_000
    assert not errors, errors[:5]
    assert worst <= MAX_STALL_S
