"""Node metrics, in a registry of their own per node (tests run several nodes in one process).

Names follow `aspen_<subsystem>_<name>_<unit>`; Raft gauges are refreshed when rendered, so a scrape
always sees the current term, role and indices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from aspen.node.service import NodeService

_ROLE_VALUE = {"Learner": 0, "Follower": 1, "Candidate": 2, "Leader": 3}


class NodeMetrics:
    def __init__(self, node_id: int) -> None:
        self.registry = CollectorRegistry()
        self.node_id = str(node_id)
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

    def request(self, operation: str, seconds: float) -> None:
        self.requests.labels(self.node_id, operation).inc()
        self.latency.labels(self.node_id, operation).observe(seconds)

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
        self.uptime.labels(n).set(service._uptime())
        self.keys.labels(n).set(len(service.state.kv))
        return generate_latest(self.registry).decode()
