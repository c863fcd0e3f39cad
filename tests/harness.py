"""Real `aspen-node` processes and real `aspen-cli` invocations for integration and fault tests.

Rules kept here so every test keeps them: nodes bind loopback only; every wait polls a condition
with a deadline (no sleeps to synchronise); every process started is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

COOKIE = "integration-test-cookie"
READY_LINE = "cluster ticket generated"


def wait_for(
    condition: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `condition` until it returns a truthy value or `timeout` passes (then AssertionError)."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)
        last = condition()
    return last


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class NodeProcess:
    node_id: int
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    cookie: str = COOKIE
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log_start: int = 0

    @property
    def ticket_path(self) -> Path:
        return self.data_dir / "cluster-ticket.txt"

    def start(self, *, timeout: float = 30.0) -> NodeProcess:
        return self.launch().wait_ready(timeout=timeout)

    def launch(self) -> NodeProcess:
        """Start the process without waiting for it (`wait_ready` does), so nodes boot in parallel."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ticket_path.exists():
            self.ticket_path.unlink()  # the node rewrites it when ready; its appearance is our signal
        self.log_path = self.data_dir.parent / f"node-{self.node_id}.log"
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = [
            sys.executable,
            "-m",
            "aspen.node",
            "--node-id",
            str(self.node_id),
            "--cookie",
            self.cookie,
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--bind-port",
            str(self.port),
            "--log-format",
            "json",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def wait_ready(self, *, timeout: float = 30.0) -> NodeProcess:
        assert self.proc is not None, "launch() first"
        proc = self.proc
        # Ready means the ticket file is written *and* this start's contract log line is out: the
        # node rewrites the ticket on membership changes, before it logs the line.
        wait_for(
            lambda: (
                (self.ticket_path.exists() and READY_LINE in self._log_since(self._log_start))
                or proc.poll() is not None
            ),
            timeout=timeout,
            what=f"node {self.node_id} ticket",
        )
        if proc.poll() is not None:
            raise AssertionError(f"node {self.node_id} exited with {proc.returncode}:\n{self.log()}")
        return self

    def _log_since(self, offset: int) -> str:
        assert self.log_path is not None
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    @property
    def ticket(self) -> str:
        return self.ticket_path.read_text()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def endpoint_id(self) -> str:
        found = re.findall(r"endpoint_id=([0-9a-f]{64})", self.log())
        assert found, "no ticket log line"
        return found[-1]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode


def free_port(host: str) -> int:
    """A port number free for both TCP and UDP on `host` (the node uses both with one number)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise AssertionError(f"no free port on {host}")


def endpoint_addr(node: NodeProcess) -> str:
    """The EndpointAddr JSON of a running node, built from its log line as an operator would."""
    line = [ln for ln in node.log().splitlines() if READY_LINE in ln][-1]
    endpoint_id = re.findall(r"endpoint_id=([0-9a-f]{64})", line)[-1]
    addrs = re.findall(r"direct_addrs=\[(.*?)\]", line)[-1].split(",")
    return json.dumps({"id": endpoint_id, "addrs": [{"Ip": a.strip()} for a in addrs]})


def cli(
    ticket: str | None,
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run `aspen-cli` as a user would; `ticket=None` leaves the ticket to the environment."""
    cmd = [sys.executable, "-m", "aspen.cli"]
    if ticket is not None:
        cmd += ["--ticket", ticket]
    cmd += list(args)
    run_env = dict(os.environ)
    run_env.pop("ASPEN_TICKET", None)
    if env:
        run_env.update(env)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, cwd=cwd, env=run_env)
    return CliResult(
        proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


class BackgroundWriter:
    """Writes unique keys through `AspenClient` from its own thread until stopped, or until `max_ops`
    or `max_seconds` (bounded either way). Records what was acknowledged and how long each call took."""

    def __init__(
        self, ticket: str, prefix: str, *, max_ops: int = 50_000, max_seconds: float = 300.0
    ) -> None:
        import threading

        self.ticket, self.prefix = ticket, prefix
        self.max_ops, self.max_seconds = max_ops, max_seconds
        self.acked: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)

    def start(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def stop(self) -> BackgroundWriter:
        self._stop.set()
        self._thread.join(timeout=60)
        return self

    def wait_acked(self, n: int, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.acked) >= n, timeout=timeout, what=f"{n} acknowledged writes")

    def _run(self) -> None:
        import asyncio

        from aspen.api.errors import AspenError
        from aspen.client import AspenClient

        async def go() -> None:
            deadline = time.monotonic() + self.max_seconds
            async with AspenClient(self.ticket, timeout=5) as client:
                for i in range(self.max_ops):
                    if self._stop.is_set() or time.monotonic() > deadline:
                        return
                    key, value = f"{self.prefix}{i:07d}", f"v{i}".encode()
                    started = time.monotonic()
                    try:
                        res = await client.set(key, value)
                    except AspenError as err:  # unavailable or outcome unknown: not acknowledged
                        self.errors.append(str(err))
                        await asyncio.sleep(0.05)  # back off a little while the cluster recovers
                        continue
                    self.latencies.append(time.monotonic() - started)
                    if res.is_success:
                        self.acked[key] = value

        asyncio.run(go())


async def read_all(ticket: str, prefix: str) -> dict[str, bytes]:
    """Every key under `prefix` (linearizable scan, paginated)."""
    from aspen.client import AspenClient

    found: dict[str, bytes] = {}
    async with AspenClient(ticket, timeout=30) as client:
        token = None
        for _ in range(10_000):
            page = await client.scan(prefix, limit=10_000, continuation_token=token)
            found.update((e.key, e.value) for e in page.entries)
            token = page.continuation_token
            if not page.is_truncated:
                break
    return found


#: Fast elections so faults are noticed and healed within a short test.
FAST_ELECTIONS = [
    "--heartbeat-interval-ms",
    "100",
    "--election-timeout-min-ms",
    "600",
    "--election-timeout-max-ms",
    "1200",
]


def make_node(
    root: Path, node_id: int, *, base: int = 10, extra_args: list[str] | None = None
) -> NodeProcess:
    """Node `node_id` on its own loopback address 127.0.0.{base + node_id}, with fast elections."""
    host = f"127.0.0.{base + node_id}"
    args = FAST_ELECTIONS + (extra_args or [])
    return NodeProcess(
        node_id=node_id, data_dir=root / f"n{node_id}", host=host, port=free_port(host), extra_args=args
    )


def form_cluster(
    root: Path,
    nodes: list[NodeProcess],
    size: int = 3,
    *,
    base: int = 10,
    extra_args: list[str] | None = None,
    through_cli: bool = False,
) -> list[NodeProcess]:
    """Start `size` nodes and form a cluster: init on node 1, add-learner the others, change-membership
    to all. Started nodes are appended to `nodes` at once, so the caller can stop every one of them
    even if forming fails half-way.

    Forming goes through the client library in this process unless `through_cli`: four `aspen-cli`
    processes cost ≈ 3 s of CPU per cluster, and the tests that form through the CLI (as an
    operator would) cover that path."""
    for i in range(1, size + 1):
        node = make_node(root, i, base=base, extra_args=extra_args)
        nodes.append(node)
        node.launch()
    for node in nodes:
        node.wait_ready()
    ids = [n.node_id for n in nodes]
    if through_cli:
        _form_through_cli(nodes, ids)
        return nodes
    from aspen.client import SyncAspenClient

    with SyncAspenClient(nodes[0].ticket, timeout=60) as client:
        assert client.init_cluster().is_success
        for n in nodes[1:]:
            res = client.add_learner(n.node_id, endpoint_addr(n))
            assert res.is_success, res.error
        res = client.change_membership(ids)
        assert res.is_success, res.error
    return nodes


def _form_through_cli(nodes: list[NodeProcess], ids: list[int]) -> None:
    res = cli(nodes[0].ticket, "cluster", "init")
    assert res.code == 0, res.stderr + res.stdout
    for n in nodes[1:]:
        res = cli(
            nodes[0].ticket, "cluster", "add-learner", "--node-id", str(n.node_id), "--addr", endpoint_addr(n)
        )
        assert res.code == 0, res.stderr + res.stdout
    res = cli(nodes[0].ticket, "--json", "cluster", "change-membership", *map(str, ids))
    assert res.code == 0, res.stderr + res.stdout
    assert res.json()["message"] == f"Membership changed to voters: {ids}"


@contextlib.contextmanager
def running_cluster(
    root: Path, *, base: int = 10, size: int = 3, through_cli: bool = False
) -> Iterator[list[NodeProcess]]:
    """A cluster formed by `form_cluster`, every node stopped (by PID) on the way out."""
    nodes: list[NodeProcess] = []
    try:
        yield form_cluster(root, nodes, size, base=base, through_cli=through_cli)
    finally:
        for n in nodes:
            n.stop()


def only(node: NodeProcess) -> str:
    """A ticket naming this node alone, so every request of its client enters the cluster there."""
    from aspen.rpc.ticket import ClusterTicket

    ticket = ClusterTicket.decode(node.ticket)
    return ClusterTicket(cookie=ticket.cookie, peers=ticket.peers[:1]).encode()


def run_json(ticket: str, *args: str) -> tuple[int, Any]:
    """`aspen-cli --json ARGS`: its exit code and its JSON document."""
    res = cli(ticket, "--json", *args)
    assert res.stdout, res.stderr
    return res.code, res.json()


def majority_leader(nodes: list[NodeProcess]) -> int | None:
    """The leader a majority of `nodes` agree on, or None (each asked once, with a short timeout)."""
    from aspen.api.errors import AspenError
    from aspen.client import SyncAspenClient

    votes: dict[int, int] = {}
    for n in nodes:
        try:
            with SyncAspenClient(n.ticket, timeout=2) as client:
                leader = client.raft_metrics().current_leader
        except AspenError:
            continue
        if leader:
            votes[leader] = votes.get(leader, 0) + 1
    best = max(votes.items(), key=lambda kv: kv[1], default=(0, 0))
    return best[0] if best[1] * 2 > len(nodes) else None


def self_reported_leader(nodes: list[NodeProcess]) -> NodeProcess | None:
    """The node among `nodes` that says it is the leader (unlike `majority_leader`, a follower still
    naming a killed leader does not count), or None."""
    from aspen.api.errors import AspenError
    from aspen.client import SyncAspenClient

    for n in nodes:
        try:
            with SyncAspenClient(only(n), timeout=2) as client:
                metrics = client.raft_metrics()
        except AspenError:
            continue
        if metrics.state == "Leader":
            return n
    return None


def file_mode(path: Path) -> int:
    """Permission bits of `path` itself (a link is not followed)."""
    return stat.S_IMODE(path.lstat().st_mode)


def loose_entries(root: Path) -> list[str]:
    """Everything under `root` (and itself) that is not private: 0700 for dirs, 0600 for files."""
    bad = []
    for path in [root, *root.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        if file_mode(path) != want:
            bad.append(f"{path.relative_to(root)}: {file_mode(path):04o}, want {want:04o}")
    return bad


_T = TypeVar("_T")


def run_on_loop(coro: Coroutine[Any, Any, _T], loop: str = "asyncio", timeout: float = 60.0) -> _T:
    """Run `coro` to completion on a fresh event loop, "asyncio" or "uvloop", bounded by `timeout`."""
    import asyncio

    async def bounded() -> _T:
        return await asyncio.wait_for(coro, timeout)

    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """The async twin of `wait_for`: poll `cond` on the running loop until it holds or `timeout`."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)  # polling interval, bounded by the deadline above
