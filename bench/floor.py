"""The floor under a single-client write on this machine: what the transports and the disk cost
before Aspen does any work of its own.

    python bench/floor.py --requests 3000

A one-at-a-time put crosses, on its critical path, one client round trip over our QUIC RPC, one
replication round trip over TLS/TCP from the leader to a follower, and one write + fdatasync of a
small WAL batch on the follower. This measures each with nothing else in it, each between two
processes on loopback as in a cluster:

  rpc     `aspen.rpc` request/response echo (aioquic, the client stack `aspen.client` uses)
  tls     a 200-byte message and its echo over TLS 1.3/TCP with the Raft transport's settings
  fsync   os.write + os.fdatasync of a 200-byte record in `--dir`, alone and with three writers
          at once (three members share one disk on a one-machine cluster)

and prints p50/p90 of each and the sum of the p50s: the latency a replicated write would have if
every line of Python around these steps took no time at all. A figure, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from aspen.rpc.loop import run

HOST = "127.0.0.1"
MESSAGE = 200


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "p50_us": round(statistics.median(s) * 1e6, 1),
        "p90_us": round(s[int(len(s) * 0.9)] * 1e6, 1),
    }


# ---------------------------------------------------------------------------------- rpc echo --
BENCH_COOKIE = "floor-bench-cookie"


def _rpc_server(q: Any, stop: Any) -> None:
    from aspen.rpc import NodeIdentity, PeerInfo, RpcServer, proof_key

    async def echo(data: bytes, peer: PeerInfo) -> bytes:
        return data

    async def main() -> None:
        identity = NodeIdentity.generate()
        server = RpcServer(identity, echo, HOST, 0, auth_key=proof_key(BENCH_COOKIE))
        await server.start()
        q.put((server.port, identity.endpoint_id))
        while not stop.is_set():
            await asyncio.sleep(0.05)  # waits for the parent's stop flag; not a synchronisation
        await server.close()

    run(main())


async def _rpc_client(port: int, endpoint_id: str, requests: int, deadline: float) -> list[float]:
    from aspen.rpc import RpcConnection, proof_key

    payload = b"x" * 100
    samples: list[float] = []
    async with await RpcConnection.connect(
        HOST, port, endpoint_id, auth_key=proof_key(BENCH_COOKIE), timeout=5.0
    ) as conn:
        for _ in range(50):  # warm-up
            await conn.request(payload, 5.0)
        while len(samples) < requests and time.monotonic() < deadline:
            t0 = time.perf_counter()
            await conn.request(payload, 5.0)
            samples.append(time.perf_counter() - t0)
    return samples


# ---------------------------------------------------------------------------------- tls echo --
def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from aspen.peer.tls import make_contexts
    from aspen.rpc import NodeIdentity

    return make_contexts(NodeIdentity.generate())


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _tls_server(q: Any, stop: Any) -> None:
    async def main() -> None:
        server_ctx, _ = _tls_contexts()
        server = await asyncio.get_running_loop().create_server(_Echo, HOST, 0, ssl=server_ctx)
        q.put((server.sockets[0].getsockname()[1], ""))
        while not stop.is_set():
            await asyncio.sleep(0.05)  # waits for the parent's stop flag; not a synchronisation
        server.close()

    run(main())


class _Pinger(asyncio.Protocol):
    def __init__(self) -> None:
        self.got = 0
        self.done: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= MESSAGE and self.done is not None and not self.done.done():
            self.done.set_result(None)


async def _tls_client(port: int, _endpoint_id: str, requests: int, deadline: float) -> list[float]:
    import socket

    loop = asyncio.get_running_loop()
    _, client_ctx = _tls_contexts()
    transport, proto = await loop.create_connection(_Pinger, HOST, port, ssl=client_ctx)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the Raft transport does
    message = b"y" * MESSAGE
    samples: list[float] = []
    try:
        for k in range(requests + 50):
            if time.monotonic() > deadline:
                break
            proto.got = 0
            proto.done = loop.create_future()
            t0 = time.perf_counter()
            transport.write(message)
            await asyncio.wait_for(proto.done, 5.0)
            if k >= 50:  # after the warm-up
                samples.append(time.perf_counter() - t0)
    finally:
        transport.close()
    return samples


def _round_trips(
    server: Callable[[Any, Any], None],
    client: Callable[[int, str, int, float], Any],
    requests: int,
    seconds: float,
) -> list[float]:
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=server, args=(q, stop), daemon=True)
    proc.start()
    try:
        port, endpoint_id = q.get(timeout=30)
        samples: list[float] = run(client(port, endpoint_id, requests, time.monotonic() + seconds))
        return samples
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()  # our own child, by handle
            proc.join(5)


# ------------------------------------------------------------------------------------- fsync --
def _fsync_writer(path: str, records: int, seconds: float, start: Any, out: Any) -> None:
    record = b"z" * MESSAGE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    samples: list[float] = []
    try:
        start.wait(30)
        deadline = time.monotonic() + seconds
        while len(samples) < records and time.monotonic() < deadline:
            t0 = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    out.put(samples)


def _fsyncs(directory: Path, writers: int, records: int, seconds: float) -> list[float]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_fsync_writer,
            args=(str(directory / f"floor-{os.getpid()}-{i}.wal"), records, seconds, start, out),
        )
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    start.set()
    samples: list[float] = []
    for _ in procs:
        samples.extend(out.get(timeout=seconds + 60))
    for p in procs:
        p.join(10)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="round trips / fsyncs per measurement")
    ap.add_argument("--seconds", type=float, default=10.0, help="time cap per measurement")
    ap.add_argument("--dir", type=Path, default=None, help="where to fsync (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="append the results as one JSON line")
    a = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    results["rpc"] = _percentiles(_round_trips(_rpc_server, _rpc_client, a.requests, a.seconds))
    results["tls"] = _percentiles(_round_trips(_tls_server, _tls_client, a.requests, a.seconds))
    with tempfile.TemporaryDirectory(prefix="aspen-floor-", dir=a.dir) as tmp:
        results["fsync_1"] = _percentiles(_fsyncs(Path(tmp), 1, a.requests, a.seconds))
        results["fsync_3"] = _percentiles(_fsyncs(Path(tmp), 3, a.requests, a.seconds))

    print(f"{'step':>8} {'n':>6} {'p50 µs':>8} {'p90 µs':>8}")
    for name, r in results.items():
        print(f"{name:>8} {int(r['n']):>6} {r['p50_us']:>8.0f} {r['p90_us']:>8.0f}")
    floor_us = results["rpc"]["p50_us"] + results["tls"]["p50_us"] + results["fsync_3"]["p50_us"]
    print(f"floor of a replicated write (rpc + tls + fsync with 3 writers, p50s): {floor_us:.0f} µs")
    if a.json is not None:
        with a.json.open("a") as f:
            f.write(json.dumps({"floor_us": round(floor_us, 1), **results}) + "\n")


if __name__ == "__main__":
    main()
