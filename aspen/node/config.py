"""Node configuration: flags and `ASPEN_*` environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The cookie every tutorial shows; refusing it keeps copy-pasted clusters from being open to all.
UNSAFE_COOKIE = "aspen-cookie-UNSAFE-CHANGE-ME"


class ConfigError(ValueError):
    """A configuration the node refuses to start with (exit 1 with this message)."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    cookie: str
    data_dir: Path
    host: str = "127.0.0.1"
    bind_port: int = 0
    secret_key: str | None = None
    heartbeat_interval_ms: int = 500
    election_timeout_min_ms: int = 1500
    election_timeout_max_ms: int = 3000
    tick_ms: int = 100
    snapshot_entries: int = 10_000
    snapshot_keep_entries: int = 1_000
    dev: bool = False
    #: The peer/bulk listener's pre-auth deadline and pending-connection bounds (`aspen.peer.transport`).
    peer_auth_timeout_s: float = 5.0
    peer_max_pending: int = 256
    peer_max_pending_per_source: int = 32

    def validate(self) -> None:
        if self.node_id <= 0:
            raise ConfigError("node_id must be non-zero")
        if self.node_id >= 2**64:
            raise ConfigError("node_id must fit in 64 bits")
        if not self.cookie:
            raise ConfigError("cookie must not be empty")
        if self.cookie == UNSAFE_COOKIE:
            raise ConfigError("using default cluster cookie is not allowed; pass --cookie with a secret")
        if len(self.cookie.encode()) > 1024:
            raise ConfigError("cookie must be at most 1024 bytes")
        if not 0 <= self.bind_port <= 65535:
            raise ConfigError(f"bind port {self.bind_port} out of range 0..65535")
        if self.snapshot_entries < 1 or self.snapshot_keep_entries < 0:
            raise ConfigError("snapshot-entries must be positive and snapshot-keep-entries not negative")
        if self.election_timeout_max_ms <= self.election_timeout_min_ms:
            raise ConfigError("election-timeout-max-ms must exceed election-timeout-min-ms")
        if self.heartbeat_interval_ms <= 0 or self.heartbeat_interval_ms >= self.election_timeout_min_ms:
            raise ConfigError("heartbeat interval must be positive and below the election timeout")
        if not 0 < self.peer_auth_timeout_s <= 300:
            raise ConfigError("peer-auth-timeout-s must be in (0, 300]")
        if self.peer_max_pending < 1 or self.peer_max_pending_per_source < 1:
            raise ConfigError("peer-max-pending and peer-max-pending-per-source must be positive")

    @property
    def election_tick(self) -> int:
        # The core randomises in [election_tick, 2*election_tick): min timeout → ticks.
        return max(3, self.election_timeout_min_ms // self.tick_ms)

    @property
    def heartbeat_tick(self) -> int:
        return max(1, self.heartbeat_interval_ms // self.tick_ms)
