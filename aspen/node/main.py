"""`aspen-node`: start a node, serve until SIGTERM/SIGINT, stop gracefully.

Startup order: umask 077, open-file limit raised → validate config → data dir made private (0700,
looser modes left by older versions fixed) → identity → open WAL and start Raft → bind the QUIC
endpoint → write `cluster-ticket.txt` and log the two contract lines. `--dev` additionally
initialises a one-node cluster on first start, so a newcomer has a usable store after one command.

Every file the node writes is 0600 and every directory 0700 whatever the caller's umask: the data
dir holds every value in the clear (WAL, snapshots, blobs), the node key and the cookie-bearing
ticket. Files are created with explicit modes; the umask is a second line for any file a library
creates on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import os
import resource
import secrets
import signal
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import structlog
from click.core import ParameterSource

from aspen.api.codec import encode_error
from aspen.api.errors import InvalidRequestError, ServiceUnavailableError, UnauthorizedError
from aspen.api.limits import MAX_MESSAGE_BYTES
from aspen.layers import LAYERS
from aspen.layers.framework import Layer
from aspen.node.backup import BackupError, restore_data_dir
from aspen.node.blobs import BlobService, make_blob_service
from aspen.node.config import ConfigError, NodeConfig
from aspen.node.leases import LeaseExpirer
from aspen.node.logsetup import configure
from aspen.node.membership import parse_endpoint_addr
from aspen.node.metrics import MetricsHttpServer, NodeMetrics
from aspen.node.service import NodeIdentityInfo, NodeService
from aspen.node.state import NodeStateMachine
from aspen.peer.transport import TcpTransport
from aspen.raft.core.types import ConfChange, ConfChangeType, ConfState, StateRole
from aspen.raft.node import DriverConfig, RaftNode
from aspen.raft.wal.errors import WalError
from aspen.rpc.auth import proof_key
from aspen.rpc.identity import NodeIdentity, load_or_create
from aspen.rpc.loop import run as run_loop
from aspen.rpc.server import PeerInfo, RpcServer
from aspen.rpc.ticket import parse_host_port

log = structlog.get_logger("aspen.node")

TICKET_FILE = "cluster-ticket.txt"
DEV_COOKIE_FILE = "dev-cookie"


def raft_secret(cookie: str) -> bytes:
    """The key peers prove knowledge of in the Raft handshake (derived, so the cookie never travels)."""
    return hmac.new(cookie.encode(), b"aspen-raft-secret-v1", hashlib.sha256).digest()


def write_private_file(path: Path, text: str) -> None:
    """Write `text` (no trailing newline) with mode 0600, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover .tmp keeps the mode it was created with
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


#: Group and other permission bits: none may be set on anything in the data dir.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def prepare_data_dir(data_dir: Path) -> None:
    """Create `data_dir` with mode 0700, or make an existing one private: the directory and every
    directory below it 0700, every file 0600 (data dirs written before modes were enforced were
    0755/0644). Logs what it changed, once."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fixed_dirs = fixed_files = 0
    # Bounded by the tree: each directory is visited once (symlinks are not followed).
    todo = [data_dir]
    while todo:
        path = todo.pop()
        mode = path.stat(follow_symlinks=False).st_mode
        if mode & _SHARED_BITS:
            os.chmod(path, 0o700)
            fixed_dirs += 1
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and (
                    entry.stat(follow_symlinks=False).st_mode & _SHARED_BITS
                ):
                    os.chmod(entry.path, 0o600)
                    fixed_files += 1
    if fixed_dirs or fixed_files:
        log.warning(
            "made the data dir private: it was readable by other users",
            data_dir=str(data_dir),
            dirs_set_0700=fixed_dirs,
            files_set_0600=fixed_files,
        )


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit and log both; returns (soft, hard) after.

    Every peer, bulk transfer, WAL segment, snapshot and blob holds a descriptor; distributions
    still default the soft limit to 1024, which a busy node (or an unauthenticated flood, until
    the listener's bounds drop it) reaches."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses a NOFILE limit above fs.nr_open, and "unlimited" is above it.
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as err:
            log.warning("could not raise the open-file limit", soft=soft, hard=hard, error=str(err))
            return soft, hard
        log.info("raised the open-file limit", soft_before=soft, soft=target, hard=hard)
        return target, hard
    log.info("open-file limit", soft=soft, hard=hard)
    return soft, hard


def read_cookie_file(path: Path) -> str:
    """The cookie in `path` (surrounding whitespace stripped). Like ssh with a private key, a file
    that other users can read or change is refused: the cookie is the whole cluster's secret."""
    try:
        st = path.stat()
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise click.BadParameter(f"cannot read {path}: {err}", param_hint="--cookie-file") from err
    if st.st_mode & _SHARED_BITS:
        raise click.BadParameter(
            f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}",
            param_hint="--cookie-file",
        )
    cookie = text.strip()
    if not cookie:
        raise click.BadParameter(f"{path} is empty", param_hint="--cookie-file")
    return cookie


def _resolve_cookie(ctx: click.Context, cookie: str | None, cookie_file: Path | None) -> str | None:
    """--cookie / ASPEN_COOKIE or --cookie-file / ASPEN_COOKIE_FILE. What is on the command line
    wins over the environment; two sources at the same level are refused as ambiguous."""
    if cookie is not None and cookie_file is not None:
        explicit = ParameterSource.COMMANDLINE
        cookie_explicit = ctx.get_parameter_source("cookie") == explicit
        file_explicit = ctx.get_parameter_source("cookie_file") == explicit
        if cookie_explicit == file_explicit:
            raise click.UsageError(
                "give the cookie once: --cookie (ASPEN_COOKIE) or --cookie-file (ASPEN_COOKIE_FILE)"
            )
        if cookie_explicit:
            return cookie
    if cookie_file is not None:
        return read_cookie_file(cookie_file)
    return cookie


class Node:
    """A running node: Raft driver, state machine, RPC server and the files it keeps in its data dir."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        metrics_port: int | None = None,
        layers: Sequence[Layer[Any, Any]] = LAYERS,
    ) -> None:
        self.config = config
        #: Serve Prometheus metrics over HTTP on config.host:metrics_port (None: off; 0: any port).
        self._metrics_port_wanted = metrics_port
        #: `layers`: the state machine's primitives (every layer of this build unless a test adds one).
        self.state = NodeStateMachine(layers)
        self.metrics = NodeMetrics(config.node_id)
        self.raft = RaftNode(
            DriverConfig(
                node_id=config.node_id,
                data_dir=config.data_dir,
                tick_interval_s=config.tick_ms / 1000,
                election_tick=config.election_tick,
                heartbeat_tick=config.heartbeat_tick,
                snapshot_entries=config.snapshot_entries,
                keep_entries=config.snapshot_keep_entries,
            ),
            self.state,
            on_batch=self.metrics.proposal_batch,
        )
        self.server: RpcServer | None = None
        self.metrics_server: MetricsHttpServer | None = None
        self.metrics_port: int | None = None
        self._record_self: asyncio.Task[None] | None = None
        self.transport: TcpTransport | None = None
        self.service: NodeService | None = None
        self.blobs: BlobService | None = None
        self._peers: set[int] = set()
        #: Revokes expired leases through Raft while this node leads (idle on followers).
        self.lease_expirer = LeaseExpirer(self.raft, self.state.kv)

    async def start(self) -> None:
        cfg = self.config
        await asyncio.to_thread(prepare_data_dir, cfg.data_dir)
        identity = await asyncio.to_thread(load_or_create, cfg.data_dir, cfg.secret_key)
        port = await self._bind(identity)
        addr = f"{cfg.host}:{port}"
        me = NodeIdentityInfo(node_id=cfg.node_id, endpoint_id=identity.endpoint_id, addrs=(addr,))
        self.service = NodeService(
            me=me,
            proof_key=proof_key(cfg.cookie),
            cookie=cfg.cookie,
            raft=self.raft,
            state=self.state,
            metrics=self.metrics,
        )
        self.raft.on_membership_change(self._sync_peers)
        assert self.transport is not None
        self.blobs = make_blob_service(cfg.data_dir, me, self.raft, self.state, self.transport, self.service)
        await self.raft.start(self.transport)
        self._sync_peers(self.raft.conf_state, dict(self.raft.members))
        st = self.raft.status()
        log.info(
            f"startup begin: state: {_role(st.role, st.is_learner)}, is_leader: {str(st.is_leader).lower()}, "
            f"is_voter: {str(st.is_voter).lower()}",
            node_id=cfg.node_id,
        )
        self.write_ticket()
        log.info(
            f"cluster ticket generated with direct addresses endpoint_id={identity.endpoint_id} "
            f"direct_addrs=[{addr}]",
            ticket_path=str(cfg.data_dir / TICKET_FILE),
        )
        if self._metrics_port_wanted is not None:
            service = self.service
            self.metrics_server = MetricsHttpServer(
                lambda: self.metrics.render(service), cfg.host, self._metrics_port_wanted
            )
            self.metrics_port = await self.metrics_server.start()
            log.info("metrics endpoint listening", url=f"http://{cfg.host}:{self.metrics_port}/metrics")
        self.record_own_address_if_missing()
        self.lease_expirer.start()

    def record_own_address_if_missing(self) -> None:
        """A single voter whose address is not in the replicated membership — a node seeded by
        `aspen-node restore`, or bootstrapped by `--dev` — records it the way `cluster init` does;
        otherwise members added later could not reach it."""
        me = self.service.me if self.service is not None else None
        if me is None or self._record_self is not None:
            return
        if self.raft.conf_state.voters == (me.node_id,) and me.node_id not in self.raft.members:
            self._record_self = asyncio.create_task(self._record_own_address(me))

    async def _record_own_address(self, me: NodeIdentityInfo) -> None:
        deadline = asyncio.get_running_loop().time() + 30.0
        while self.raft.role != StateRole.LEADER:  # a single voter elects itself within a persist
            if asyncio.get_running_loop().time() > deadline:
                log.warning("could not record own address: not leader", node_id=me.node_id)
                return
            await asyncio.sleep(0.05)  # polling a condition with a deadline
        try:
            await self.raft.change_membership(
                ConfChange(ConfChangeType.ADD_VOTER, me.node_id, me.endpoint_addr_json()), timeout=30.0
            )
            log.info("recorded own address in the membership", node_id=me.node_id)
        except Exception as err:  # not fatal: the node serves; adding members needs a restart to retry
            log.warning("could not record own address", node_id=me.node_id, error=str(err))

    async def _bind(self, identity: NodeIdentity) -> int:
        """QUIC (UDP) for clients and TLS/TCP for peers, on one port number. With port 0 the UDP port
        is picked first; if that number is taken for TCP, try again with another."""
        cfg = self.config
        oversize = encode_error(
            InvalidRequestError(f"request exceeds maximum message size of {MAX_MESSAGE_BYTES} bytes")
        )
        busy = encode_error(ServiceUnavailableError("too many concurrent requests on this connection"))
        unauthorized = encode_error(UnauthorizedError("invalid cluster cookie"))
        attempts = 1 if cfg.bind_port else 20
        for attempt in range(attempts):
            server = RpcServer(
                identity,
                self._handle,
                host=cfg.host,
                port=cfg.bind_port,
                auth_key=proof_key(cfg.cookie),
                oversize_response=oversize,
                busy_response=busy,
                unauthorized_response=unauthorized,
            )
            _, port = await server.start()
            transport = TcpTransport(
                node_id=cfg.node_id,
                identity=identity,
                host=cfg.host,
                port=port,
                deliver=self.raft.deliver,
                on_unreachable=self.raft.report_unreachable,
                cluster_secret=raft_secret(cfg.cookie),
                # Until it has joined a cluster a node knows no members; it admits peers that prove
                # the cookie, so that a leader can add it.
                admit_unknown=lambda _node_id: not self.raft.is_initialized,
                auth_timeout=cfg.peer_auth_timeout_s,
                max_pending=_pending_bound(cfg.peer_max_pending),
                max_pending_per_source=cfg.peer_max_pending_per_source,
            )
            try:
                await transport.start()
            except OSError:
                await server.close()
                if attempt == attempts - 1:
                    raise
                continue
            self.server, self.transport = server, transport
            return port
        raise OSError("no port number free for both UDP and TCP")  # pragma: no cover

    def _sync_peers(self, conf: ConfState, members: dict[int, bytes]) -> None:
        """Point the peer transport at every other member's address (from the replicated membership)."""
        transport = self.transport
        if transport is None:
            return
        wanted = {n for n in (*conf.voters, *conf.learners) if n != self.config.node_id and n in members}
        for node_id in wanted:
            try:
                addr = parse_endpoint_addr(members[node_id])
                transport.set_peer(node_id, addr.endpoint_id, [parse_host_port(a) for a in addr.addrs])
            except ValueError as err:
                log.warning("member has an unusable address", member=node_id, error=str(err))
        for node_id in self._peers - wanted:
            transport.remove_peer(node_id)
        self._peers = wanted
        self.write_ticket()

    async def _handle(self, data: bytes, _peer: PeerInfo) -> bytes:
        if self.service is None:  # a request that raced startup
            return encode_error(ServiceUnavailableError("node is starting"))
        return await self.service.handle(data)

    def write_ticket(self) -> None:
        if self.service is not None:
            write_private_file(self.config.data_dir / TICKET_FILE, self.service.ticket().encode())

    async def stop(self) -> None:
        await self.lease_expirer.stop()
        if self._record_self is not None:
            self._record_self.cancel()
            with contextlib.suppress(BaseException):
                await self._record_self
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.server is not None:
            await self.server.close()
        if self.blobs is not None:
            await self.blobs.close()
        if self.service is not None:
            await self.service.close()
        await self.raft.stop()  # closes the transport too


def _pending_bound(wanted: int) -> int:
    """The listener's pending-connection bound, at most a quarter of the open-file limit: where
    the limit could not be raised, a flood must still leave descriptors for blobs, WAL segments,
    snapshots and the members' channels."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft // 4))


def _role(role: StateRole, is_learner: bool) -> str:
    if is_learner:
        return "Learner"
    return {StateRole.LEADER: "Leader", StateRole.FOLLOWER: "Follower"}.get(role, "Candidate")


def freeze_startup_heap() -> None:
    """Take everything built while starting (modules, pydantic models, TLS and QUIC state, the
    restored store) out of the cyclic collector's reach, as Instagram does with `gc.freeze()`.

    Those objects live as long as the process, yet every full collection walked all of them, and
    under load those passes were a visible share of a node's CPU and the worst of its tail latency
    (docs/performance.md has the figures). Frozen objects are still freed by reference counting;
    only garbage *cycles* among them would stay, and start-up objects are not discarded in cycles.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: NodeConfig, metrics_port: int | None = None) -> int:
    node = Node(config, metrics_port=metrics_port)
    await node.start()
    if config.dev and not node.raft.is_initialized:
        await node.raft.bootstrap()
        log.info("dev mode: initialised a one-node cluster", node_id=config.node_id)
        node.record_own_address_if_missing()
    freeze_startup_heap()
    if config.dev:
        ticket_path = (config.data_dir / TICKET_FILE).resolve()
        print(f"Aspen dev node {config.node_id} is up. Ticket: {ticket_path}", flush=True)
        print("Try:  aspen-cli kv set hello world && aspen-cli kv get hello", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped_by_fault = asyncio.create_task(node.raft.stopped.wait())
    stop_requested = asyncio.create_task(stop.wait())
    await asyncio.wait({stopped_by_fault, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
    fault = stopped_by_fault.done() and not stop.is_set()
    for task in (stopped_by_fault, stop_requested):
        task.cancel()
    log.info("shutting down", node_id=config.node_id)
    await node.stop()
    return 1 if fault else 0


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option("--node-id", type=int, envvar="ASPEN_NODE_ID", help="Raft node id (non-zero u64).")
@click.option(
    "--cookie",
    envvar="ASPEN_COOKIE",
    help="Shared cluster secret. Discouraged on the command line, where every local user sees it "
    "(ps, /proc/PID/cmdline): use --cookie-file or ASPEN_COOKIE.",
)
@click.option(
    "--cookie-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ASPEN_COOKIE_FILE",
    help="File holding the cluster secret (mode 0600 or stricter; e.g. a systemd credential).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="ASPEN_DATA_DIR", help="Data directory.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ASPEN_HOST", help="Address to bind.")
@click.option(
    "--bind-port",
    type=int,
    default=0,
    show_default=True,
    envvar=["ASPEN_BIND_PORT", "ASPEN_IROH_BIND_PORT"],
    help="UDP port for client RPC (QUIC) and TCP port for peers; 0 = pick one.",
)
@click.option(
    "--iroh-secret-key",
    "secret_key",
    envvar="ASPEN_IROH_SECRET_KEY",
    help="Node identity: 64-hex Ed25519 secret (default: DATA_DIR/iroh_secret_key, generated once).",
)
@click.option(
    "--heartbeat-interval-ms", type=int, default=500, show_default=True, envvar="ASPEN_HEARTBEAT_INTERVAL_MS"
)
@click.option(
    "--election-timeout-min-ms",
    type=int,
    default=1500,
    show_default=True,
    envvar="ASPEN_ELECTION_TIMEOUT_MIN_MS",
)
@click.option(
    "--election-timeout-max-ms",
    type=int,
    default=3000,
    show_default=True,
    envvar="ASPEN_ELECTION_TIMEOUT_MAX_MS",
)
@click.option(
    "--snapshot-keep-entries",
    type=int,
    default=1_000,
    show_default=True,
    envvar="ASPEN_SNAPSHOT_KEEP_ENTRIES",
    help="Log entries kept behind a snapshot, so lagging followers need no snapshot.",
)
@click.option(
    "--snapshot-entries",
    type=int,
    default=10_000,
    show_default=True,
    envvar="ASPEN_SNAPSHOT_ENTRIES",
    help="Snapshot and compact the log every this many applied entries.",
)
@click.option(
    "--peer-auth-timeout-s",
    type=click.FloatRange(0, 300, min_open=True),
    default=5.0,
    show_default=True,
    envvar="ASPEN_PEER_AUTH_TIMEOUT_S",
    help="Peer/bulk TCP listener: deadline for a connection's TLS handshake and authentication.",
)
@click.option(
    "--peer-max-pending",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    envvar="ASPEN_PEER_MAX_PENDING",
    help="Peer/bulk TCP listener: connections not yet authenticated (oldest evicted when full).",
)
@click.option(
    "--peer-max-pending-per-source",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    envvar="ASPEN_PEER_MAX_PENDING_PER_SOURCE",
    help="Peer/bulk TCP listener: connections not yet authenticated from one source address.",
)
@click.option(
    "--dev", is_flag=True, help="Run an initialised one-node cluster in ./aspen-data (for trying Aspen)."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="ASPEN_METRICS_PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (default: off; 0 = pick a port).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="ASPEN_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="auto",
    show_default=True,
    envvar="ASPEN_LOG_FORMAT",
    type=click.Choice(["auto", "console", "json"]),
)
@click.pass_context
def main(
    ctx: click.Context,
    node_id: int | None,
    cookie: str | None,
    cookie_file: Path | None,
    data_dir: Path | None,
    host: str,
    bind_port: int,
    secret_key: str | None,
    heartbeat_interval_ms: int,
    election_timeout_min_ms: int,
    election_timeout_max_ms: int,
    snapshot_entries: int,
    snapshot_keep_entries: int,
    peer_auth_timeout_s: float,
    peer_max_pending: int,
    peer_max_pending_per_source: int,
    dev: bool,
    metrics_port: int | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run one Aspen node (or, with a subcommand, an offline tool on a data dir)."""
    # Before anything is written (subcommands too): files created without an explicit mode are
    # private as well.
    os.umask(0o077)
    if ctx.invoked_subcommand is not None:
        return
    configure(log_level, log_format)
    raise_open_file_limit()
    cookie = _resolve_cookie(ctx, cookie, cookie_file)
    if dev:
        node_id = node_id or 1
        data_dir = data_dir or Path("aspen-data")
        if cookie is None:
            cookie = _dev_cookie(data_dir)
    if node_id is None:
        raise click.UsageError("--node-id is required (or set ASPEN_NODE_ID)")
    if data_dir is None:
        raise click.UsageError("--data-dir is required (or set ASPEN_DATA_DIR)")
    if cookie is None:
        raise click.UsageError("a cookie is required: --cookie-file (ASPEN_COOKIE_FILE) or ASPEN_COOKIE")
    config = NodeConfig(
        node_id=node_id,
        cookie=cookie,
        data_dir=data_dir,
        host=host,
        bind_port=bind_port,
        secret_key=secret_key,
        heartbeat_interval_ms=heartbeat_interval_ms,
        election_timeout_min_ms=election_timeout_min_ms,
        election_timeout_max_ms=election_timeout_max_ms,
        snapshot_entries=snapshot_entries,
        snapshot_keep_entries=snapshot_keep_entries,
        dev=dev,
        peer_auth_timeout_s=peer_auth_timeout_s,
        peer_max_pending=peer_max_pending,
        peer_max_pending_per_source=peer_max_pending_per_source,
    )
    try:
        config.validate()
    except ConfigError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    try:
        code = run_loop(_serve(config, metrics_port))
    except ValueError as err:  # e.g. a malformed --iroh-secret-key
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    except OSError as err:  # e.g. the port is taken
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    sys.exit(code)


def _dev_cookie(data_dir: Path) -> str:
    """A random cookie kept in the dev data dir: dev clusters are private without any setup."""
    path = data_dir / DEV_COOKIE_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cookie = "dev-" + secrets.token_hex(16)
    write_private_file(path, cookie)
    return cookie


@main.command("restore")
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Backup file written by `aspen-cli cluster snapshot save`.",
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), required=True, help="New (empty) data directory."
)
@click.option(
    "--node-id",
    type=click.IntRange(1, 2**64 - 1),
    default=1,
    show_default=True,
    help="Id of the node that will serve DATA_DIR: the only voter of the new cluster.",
)
def restore(source: Path, data_dir: Path, node_id: int) -> None:
    """Seed a NEW one-node cluster from a backup (offline; like `etcdutl snapshot restore`).

    Then start `aspen-node --data-dir DATA_DIR --node-id NODE_ID ...`: it serves every key of the
    backup at once, and grows with `cluster add-learner` / `change-membership`."""
    try:
        report = restore_data_dir(source, data_dir, node_id)
    except (BackupError, OSError, WalError) as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    click.echo(
        f"Restored {report.keys} keys (applied index {report.applied_index}, saved from node "
        f"{report.source_node_id}) into {data_dir} as node {node_id}. Start it with: "
        f"aspen-node --node-id {node_id} --data-dir {data_dir} --cookie-file ..."
    )


if __name__ == "__main__":  # pragma: no cover
    main()
