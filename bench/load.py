"""Closed-loop load generator for Aspen, built on `aspen.client`.

    python bench/load.py --op put --concurrency 1,16,256 --duration 8
    python bench/load.py --op get --ticket "$(cat aspen-data/cluster-ticket.txt)"

Without `--ticket` it starts its own 3-node cluster on 127.0.0.21-23 (real `aspen-node` processes,
formed through `aspen-cli` like any operator would) and stops it, by PID, at the end.

For each concurrency level C, C coroutines each keep one request outstanding (closed loop), spread
over `--procs` client processes and `--conns` client connections per process (aioquic allows 128
concurrent streams per connection). Every level is bounded by `--duration` seconds *and* `--max-ops`
operations. Printed per level: ops/s, latency p50/p90/p99/max, errors, client CPU, CPU of each node
(when this script started the nodes) and the CPU used by other processes on the host during the
window ("foreign": a number far above 0 means the machine was busy and the figure is suspect).

Workloads (16-byte keys from a key space of `--key-space`, `--value-size`-byte values):
  put          WriteKey of a random key
  get          ReadKey of a random existing key, linearizable (ReadIndex)
  get-stale    ReadKey with stale=True (served from the contacted node's state)
  cas          CompareAndSwapKey on a key owned by the worker (expected = its last value)
  scan         ScanKeys of 100 keys from a random start prefix
  batch-write  BatchWrite of 10 random keys (one op = one batch)
Only loopback endpoints are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPS = ("put", "get", "get-stale", "cas", "scan", "batch-write")
READ_OPS = frozenset({"get", "get-stale", "scan"})
BATCH = 10
SCAN_LIMIT = 100
CLK = os.sysconf("SC_CLK_TCK")


def key_for(i: int, key_size: int = 16) -> str:
    return f"k{i:0{key_size - 1}d}"[:key_size]


def pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def proc_cpu(pid: int) -> float | None:
    """utime + stime of one process, in seconds (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def host_busy() -> tuple[int, int]:
    """(busy ticks, total ticks) of the whole host, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def busy_cores(a: tuple[int, int], b: tuple[int, int]) -> float:
    dt = b[1] - a[1]
    return (b[0] - a[0]) / dt * (os.cpu_count() or 1) if dt > 0 else 0.0


# ------------------------------------------------------------------------------ the client side --
@dataclass
class LevelConfig:
    op: str
    ticket: str
    duration: float
    warmup: float
    max_ops: int
    conns: int
    value_size: int
    key_space: int
    #: `--target all`: spread the connections over the peers, each starting at another one.
    spread: bool = False

    @classmethod
    def from_args(cls, op: str, ticket: str, a: argparse.Namespace) -> LevelConfig:
        """A level of `op` against `ticket`, configured by the command line (load.py's or
        compare_etcd.py's: they share these option names)."""
        return cls(
            op,
            ticket,
            a.duration,
            a.warmup,
            a.max_ops,
            a.conns,
            a.value_size,
            a.key_space,
            spread=a.target == "all",
        )


def _child(cfg: LevelConfig, workers: int, start_at: float, q: Any, first_conn: int = 0) -> None:
    from aspen.rpc.loop import run as run_loop

    try:
        res = run_loop(_child_async(cfg, workers, start_at, first_conn))  # uvloop, like aspen-cli
    except BaseException as exc:  # report instead of leaving the parent waiting
        res = {"error": repr(exc)}
    q.put(res)


def rotated(ticket: str, by: int) -> str:
    """The ticket with its peers rotated, so a client enters the cluster at peer `by` (mod n)."""
    from aspen.rpc.ticket import ClusterTicket

    t = ClusterTicket.decode(ticket)
    k = by % len(t.peers)
    return ClusterTicket(cookie=t.cookie, peers=t.peers[k:] + t.peers[:k]).encode()


async def _child_async(cfg: LevelConfig, workers: int, start_at: float, first_conn: int) -> dict[str, Any]:
    from aspen.api.errors import AspenError
    from aspen.api.messages import SetOperation
    from aspen.client import AspenClient

    nconns = max(1, min(cfg.conns, workers))
    tickets = [rotated(cfg.ticket, first_conn + i) if cfg.spread else cfg.ticket for i in range(nconns)]
    clients = [AspenClient(t, timeout=10) for t in tickets]
    for c in clients:  # connect before the clock starts
        await c.ping()
    rng = random.Random(os.getpid())
    value = b"v" * cfg.value_size
    lat = array("d")
    state = {"measuring": False, "ops": 0, "errors": 0, "stop": False}
    pid = os.getpid()

    def make_op(idx: int) -> Callable[[], Awaitable[bool]]:
        client = clients[idx % len(clients)]
        if cfg.op == "put":
            return lambda: _ok(client.set(key_for(rng.randrange(cfg.key_space)), value))
        if cfg.op in ("get", "get-stale"):
            stale = cfg.op == "get-stale"
            return lambda: _found(client.read(key_for(rng.randrange(cfg.key_space)), stale=stale))
        if cfg.op == "scan":
            return lambda: _scanned(client.scan(key_for(rng.randrange(cfg.key_space))[:12], limit=SCAN_LIMIT))
        if cfg.op == "batch-write":

            def batch() -> Awaitable[bool]:
                keys = {key_for(rng.randrange(cfg.key_space)) for _ in range(BATCH)}
                return _ok(client.batch_write([SetOperation(key=k, value=value) for k in sorted(keys)]))

            return batch
        # cas: the worker owns one key and always knows its current value, so every CAS must win.
        own = f"cas-{pid}-{idx:05d}"
        last: list[bytes | None] = [None]

        async def cas() -> bool:
            new = b"%d" % rng.getrandbits(60)
            res = await client.compare_and_swap(own, last[0], new)
            if res.is_success:
                last[0] = new
            return bool(res.is_success)

        return cas

    async def worker(idx: int) -> None:
        op = make_op(idx)
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                ok = await op()
            except AspenError:
                ok = False
            t1 = time.perf_counter()
            if state["measuring"]:
                if ok:
                    lat.append(t1 - t0)
                    state["ops"] += 1
                    if state["ops"] >= cfg.max_ops:
                        state["stop"] = True
                else:
                    state["errors"] += 1

    await asyncio.sleep(max(0.0, start_at - time.time()))  # a synchronised start across processes
    tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
    await asyncio.sleep(cfg.warmup)
    cpu0 = time.process_time()
    t_start = time.perf_counter()
    state["measuring"] = True
    deadline = t_start + cfg.duration
    while not state["stop"] and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    state["measuring"] = False
    t_end = time.perf_counter()
    state["stop"] = True
    cpu1 = time.process_time()
    await asyncio.wait(tasks, timeout=15)
    for t in tasks:
        t.cancel()
    for c in clients:
        await c.close()
    return {
        "ops": state["ops"],
        "errors": state["errors"],
        "elapsed": t_end - t_start,
        "cpu": cpu1 - cpu0,
        "lat": lat.tobytes(),
    }


async def _ok(call: Awaitable[Any]) -> bool:
    return bool((await call).is_success)


async def _found(call: Awaitable[Any]) -> bool:
    return bool((await call).was_found)


async def _scanned(call: Awaitable[Any]) -> bool:
    await call
    return True


def run_level(cfg: LevelConfig, concurrency: int, procs: int, node_pids: dict[int, int]) -> dict[str, Any]:
    procs = max(1, min(procs, concurrency))
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 2.0 + 0.5 * procs  # time to spawn, import and connect
    sub = LevelConfig(**{**cfg.__dict__, "max_ops": max(1, cfg.max_ops // procs)})
    children = [
        ctx.Process(target=_child, args=(sub, n, start_at, q, i * cfg.conns)) for i, n in enumerate(per)
    ]
    for p in children:
        p.start()
    time.sleep(max(0.0, start_at + cfg.warmup - time.time()))
    cpu0 = {n: proc_cpu(pid) for n, pid in node_pids.items()}
    h0, w0 = host_busy(), time.perf_counter()
    results: list[dict[str, Any]] = []
    cpu1: dict[int, float | None] = {}
    h1, w1 = h0, w0
    hard_deadline = time.time() + cfg.warmup + cfg.duration + 60
    while len(results) < len(children) and time.time() < hard_deadline:
        try:
            results.append(q.get(timeout=1))
        except Exception:
            continue
        if len(results) == 1:  # the first child done = the end of the measuring window
            cpu1 = {n: proc_cpu(pid) for n, pid in node_pids.items()}
            h1, w1 = host_busy(), time.perf_counter()
    for p in children:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()  # our own child
    errs = [r["error"] for r in results if "error" in r]
    if errs or len(results) < len(children):
        raise SystemExit(f"client process failed: {errs or 'timeout'}")
    lat = array("d")
    for r in results:
        a = array("d")
        a.frombytes(r["lat"])
        lat.extend(a)
    lat_sorted = sorted(lat)
    ops = sum(r["ops"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    window = max(1e-9, w1 - w0)
    node_cpu = {
        n: round((cpu1[n] or 0.0) - (cpu0[n] or 0.0), 2)
        for n in node_pids
        if cpu0.get(n) is not None and cpu1.get(n) is not None
    }
    client_cpu = sum(r["cpu"] for r in results) / elapsed
    foreign = busy_cores(h0, h1) - client_cpu - sum(node_cpu.values()) / window

    def ms(v: float) -> float:
        return round(v * 1000, 3)

    return {
        "system": "aspen",
        "op": cfg.op,
        "concurrency": concurrency,
        "procs": procs,
        "conns_per_proc": cfg.conns,
        "ops": ops,
        "errors": sum(r["errors"] for r in results),
        "seconds": round(elapsed, 2),
        "ops_per_s": round(ops / elapsed, 1),
        "p50_ms": ms(pct(lat_sorted, 50)),
        "p90_ms": ms(pct(lat_sorted, 90)),
        "p99_ms": ms(pct(lat_sorted, 99)),
        "max_ms": ms(lat_sorted[-1]) if lat_sorted else None,
        "client_cpu_cores": round(client_cpu, 2),
        "node_cpu_seconds": node_cpu,
        "node_cpu_cores": round(sum(node_cpu.values()) / window, 2) if node_cpu else None,
        "foreign_cpu_cores": round(foreign, 2),
    }


# ------------------------------------------------------------------------------ the cluster side --
class LocalCluster:
    """Three `aspen-node` processes on 127.0.0.21-23, formed through `aspen-cli`; stopped by PID."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self._tmp = tempfile.TemporaryDirectory(prefix="aspen-bench-")
        self.nodes: list[Any] = []

    def start(self) -> LocalCluster:
        from tests.harness import form_cluster

        try:
            form_cluster(Path(self._tmp.name), self.nodes, self.size, base=20)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def ticket(self) -> str:
        return str(self.nodes[0].ticket)

    @property
    def pids(self) -> dict[int, int]:
        return {n.node_id: n.proc.pid for n in self.nodes if n.proc is not None}

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
        self._tmp.cleanup()


def leader_first(ticket: str, target: str) -> str:
    """The ticket with the peers the clients should talk to first (`leader`, `follower` or `all`)."""
    from aspen.client import AspenClient
    from aspen.rpc.ticket import ClusterTicket

    t = ClusterTicket.decode(ticket)
    for p in t.peers:
        for a in p.addrs:
            if not a.startswith("127."):
                raise SystemExit(f"refusing non-loopback address {a!r}")
    if target == "all" or len(t.peers) == 1:
        return ticket

    async def leader_id() -> int:
        async with AspenClient(ticket, timeout=10) as c:
            return int((await c.leader()).leader_id or 0)

    state_nodes = asyncio.run(_node_endpoints(ticket))
    lid = asyncio.run(leader_id())
    leader_ep = state_nodes.get(lid)
    first = [p for p in t.peers if (p.endpoint_id == leader_ep) == (target == "leader")]
    rest = [p for p in t.peers if p not in first]
    return ClusterTicket(cookie=t.cookie, peers=tuple(first[:1] + rest + first[1:])).encode()


async def _node_endpoints(ticket: str) -> dict[int, str]:
    from aspen.client import AspenClient

    async with AspenClient(ticket, timeout=10) as c:
        state = await c.cluster_state()
    return {n.node_id: json.loads(n.endpoint_addr)["id"] for n in state.nodes}


async def preload(ticket: str, key_space: int, value_size: int) -> None:
    from aspen.api.messages import SetOperation
    from aspen.client import AspenClient

    value = b"v" * value_size
    async with AspenClient(ticket, timeout=30) as c:
        for start in range(0, key_space, 100):
            stop = min(start + 100, key_space)
            items = [SetOperation(key=key_for(i), value=value) for i in range(start, stop)]
            res = await c.batch_write(items)
            assert res.is_success, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticket", help="an existing cluster's ticket (default: start a local 3-node cluster)")
    ap.add_argument("--target", choices=["leader", "follower", "all"], default="leader")
    ap.add_argument("--op", default="put", help=f"comma-separated, from {', '.join(OPS)}")
    ap.add_argument("--concurrency", default="1,16,256")
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per level (cap)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--max-ops", type=int, default=500_000, help="operations per level (cap)")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--conns", type=int, default=2, help="client connections per process")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--key-space", type=int, default=10_000)
    ap.add_argument("--json", help="append one JSON line per level to this file")
    a = ap.parse_args()
    ops = [o.strip() for o in a.op.split(",") if o.strip()]
    for o in ops:
        if o not in OPS:
            ap.error(f"unknown op {o!r}; choose from {', '.join(OPS)}")
    if a.duration > 55:
        ap.error("--duration must stay under 55 s")
    levels = [int(x) for x in a.concurrency.split(",")]

    cluster = None if a.ticket else LocalCluster().start()
    try:
        ticket = a.ticket or cluster.ticket  # type: ignore[union-attr]
        pids = cluster.pids if cluster else {}
        targeted = leader_first(ticket, a.target)
        if any(o in READ_OPS for o in ops):
            asyncio.run(preload(targeted, a.key_space, a.value_size))
        print(
            f"# aspen key=16B value={a.value_size}B target={a.target} procs<={a.procs} "
            f"conns/proc<={a.conns} duration<={a.duration}s",
            flush=True,
        )
        print(
            f"{'op':>11} {'conc':>5} {'ops/s':>9} {'p50ms':>8} {'p90ms':>8} {'p99ms':>8} {'maxms':>8} "
            f"{'err':>4} {'cliCPU':>6} {'nodeCPU':>7} {'foreign':>7}",
            flush=True,
        )
        for op in ops:
            for c in levels:
                cfg = LevelConfig.from_args(op, targeted, a)
                r = run_level(cfg, c, a.procs, pids)
                r["target"] = a.target
                print(
                    f"{op:>11} {c:>5} {r['ops_per_s']:>9} {r['p50_ms']:>8} {r['p90_ms']:>8} "
                    f"{r['p99_ms']:>8} {r['max_ms']!s:>8} {r['errors']:>4} {r['client_cpu_cores']:>6} "
                    f"{r['node_cpu_cores']!s:>7} {r['foreign_cpu_cores']:>7}",
                    flush=True,
                )
                if a.json:
                    with open(a.json, "a") as f:
                        f.write(json.dumps(r) + "\n")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
