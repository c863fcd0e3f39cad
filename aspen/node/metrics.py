"""Node metrics, in a registry of their own per node (tests run several nodes in one process).

Names follow `aspen_<subsystem>_<name>_<unit>`; Raft gauges are refreshed when rendered, so a scrape
always sees the current term, role and indices.

`MetricsHttpServer` serves the same text over HTTP (`aspen-node --metrics-port`). It runs on the
node's event loop rather than in prometheus_client's `start_http_server` thread: refreshing the Raft
gauges reads driver state (progress maps, indices) that only the loop may touch, and a scrape from
another thread would race with the loop mutating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from aspen.node.service import NodeService

_ROLE_VALUE = {"Learner": 0, "Follower": 1, "Candidate": 2, "Leader": 3}


class NodeMetrics:
    def __init__(self, node_id: int) -> None:
        self.registry = CollectorRegistry()
        self.node_id = str(node_id)
        self._per_operation: dict[str, tuple[Any, Any]] = {}
        r = self.registry
        self.requests = Counter(
            "aspen_rpc_requests", "Client requests handled", ["node_id", "operation"], registry=r
        )
        self.errors = Counter(
            "aspen_rpc_errors",
            "Client requests answered with an error",
            ["node_id", "operation", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "aspen_rpc_duration_seconds",
            "Client request latency",
            ["node_id", "operation"],
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.term = Gauge("aspen_raft_term", "Current Raft term", ["node_id"], registry=r)
        self.state = Gauge(
            "aspen_raft_state", "0 learner, 1 follower, 2 candidate, 3 leader", ["node_id"], registry=r
        )
        self.is_leader = Gauge("aspen_raft_is_leader", "1 on the leader", ["node_id"], registry=r)
        self.last_log = Gauge("aspen_raft_last_log_index", "Last log index", ["node_id"], registry=r)
        self.applied = Gauge("aspen_raft_last_applied_index", "Last applied index", ["node_id"], registry=r)
        self.snapshot = Gauge(
            "aspen_raft_snapshot_index", "Index of the newest snapshot", ["node_id"], registry=r
        )
        self.uptime = Gauge(
            "aspen_node_uptime_seconds", "Seconds since the node started", ["node_id"], registry=r
        )
        self.keys = Gauge("aspen_kv_keys", "Keys in the state machine", ["node_id"], registry=r)
        self.leader_id = Gauge(
            "aspen_raft_leader_id", "Node id of the leader this node knows (0: none)", ["node_id"], registry=r
        )
        self.batch_commands = Histogram(
            "aspen_raft_proposal_batch_commands",
            "Commands packed into one log entry by group commit",
            ["node_id"],
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
        )
        self.batch_bytes = Histogram(
            "aspen_raft_proposal_batch_bytes",
            "Payload bytes packed into one log entry by group commit",
            ["node_id"],
            registry=r,
            buckets=(64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
        )
        # The process's own figures (resident memory, CPU seconds, open fds, collector passes),
        # which the default registry would carry; ours is per node, so they are added by hand.
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        Gauge(
            "aspen_process_gc_frozen_objects",
            "Objects moved out of the cyclic collector's reach when the node finished starting",
            registry=r,
        ).set_function(gc.get_freeze_count)

    def request(self, operation: str, seconds: float) -> None:
        children = self._per_operation.get(operation)
        if children is None:
            # labels() hashes and locks on every call; resolve each operation's children once.
            children = self._per_operation[operation] = (
                self.requests.labels(self.node_id, operation),
                self.latency.labels(self.node_id, operation),
            )
        children[0].inc()
        children[1].observe(seconds)

    def proposal_batch(self, commands: int, size: int) -> None:
        """The Raft driver's group-commit hook: one call per proposed log entry."""
        self.batch_commands.labels(self.node_id).observe(commands)
        self.batch_bytes.labels(self.node_id).observe(size)

    def error(self, operation: str, code: str) -> None:
        self.errors.labels(self.node_id, operation, code).inc()

    def render(self, service: NodeService) -> str:
        n = self.node_id
        if service.raft.is_initialized:
            st = service.raft.status()
            self.term.labels(n).set(st.term)
            self.state.labels(n).set(_ROLE_VALUE[service.role_name()])
            self.is_leader.labels(n).set(1 if st.is_leader else 0)
            self.last_log.labels(n).set(st.last_index)
            self.applied.labels(n).set(st.applied)
            self.snapshot.labels(n).set(st.snapshot_index)
            self.leader_id.labels(n).set(st.leader_id)
        self.uptime.labels(n).set(service._uptime())
        self.keys.labels(n).set(len(service.state.kv))
        return generate_latest(self.registry).decode()


log = structlog.get_logger("aspen.node.metrics")

#: A scraper sends a few hundred bytes; anything bigger or slower is not a scraper.
_MAX_REQUEST_HEAD = 8192
_READ_TIMEOUT_S = 10.0


class MetricsHttpServer:
    """A minimal HTTP/1.1 endpoint: `GET /metrics` (and `/`) returns `render()`; the rest is 404/405.

    One request per connection (`Connection: close`), which is what Prometheus needs."""

    def __init__(self, render: Callable[[], str], host: str, port: int) -> None:
        self._render = render
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Bind and return the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            if len(head) > _MAX_REQUEST_HEAD:
                raise ValueError("request head too large")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if path not in ("/metrics", "/"):
                status, ctype, body = "404 Not Found", "text/plain", b"not found; try /metrics\n"
            elif method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            else:
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self._render().encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(body)
            await asyncio.wait_for(writer.drain(), _READ_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, OSError):
            pass  # a broken or hostile client: drop the connection, the node carries on
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
