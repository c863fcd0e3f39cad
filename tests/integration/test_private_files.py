"""Issue 19, item 7: with the usual umask (022) a real node's data dir is 0700 and every file it
writes 0600 -- WAL, snapshots, blobs, node key, ticket -- and so are a backup written by
`aspen-cli cluster snapshot save` and a data dir seeded by `aspen-node restore`. The cookie comes
from a file (`--cookie-file`, `ASPEN_COOKIE_FILE`), never shown in the process's command line;
`--dev` still needs no setup at all.

These nodes are started here rather than by `harness.NodeProcess`, which passes `--cookie`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import READY_LINE, cli, file_mode, free_port, loose_entries, wait_for

from aspen.client import AspenClient
from aspen.rpc.ticket import ClusterTicket

#: Every test runs under the usual login umask (see conftest's `loose_umask`).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loose_umask")]

HOST = "127.0.0.97"
COOKIE = "cookie-from-a-file-0123456789"
BLOB = 6 * 1024 * 1024  # over the inline threshold: stored through the bulk channel's temp file


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASPEN_")}
    env.update(extra)
    return env


class Node:
    """An `aspen-node` process with our own arguments; stopped by its PID."""

    def __init__(self, args: list[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aspen.node", "--log-format", "json", *args],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env or clean_env(),
            )

    def wait_ready(self, ticket_path: Path) -> str:
        wait_for(
            lambda: (ticket_path.exists() and READY_LINE in self.log()) or self.proc.poll() is not None,
            timeout=30,
            what="node ready",
        )
        assert self.proc.poll() is None, self.log()
        return ticket_path.read_text()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def cookie_file(root: Path, text: str = COOKIE + "\n", perms: int = 0o600) -> Path:
    path = root / "cookie"
    path.write_text(text)
    path.chmod(perms)
    return path


async def load(ticket: str) -> None:
    async with AspenClient(ticket, timeout=30) as client:
        for i in range(120):  # > --snapshot-entries: the node snapshots on its own as well
            assert (await client.set(f"k{i:04d}", b"v" * 100)).is_success
        for data in (os.urandom(BLOB), b"small inline blob"):
            assert (await client.add_blob(data)).is_success
        assert (await client.trigger_snapshot()).is_success


def test_every_file_the_node_writes_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "left-by-an-older-version").write_text("x")  # 0644 under this umask
    assert file_mode(data) == 0o755
    secret = cookie_file(tmp_path)
    port = free_port(HOST)
    args = ["--dev", "--node-id", "1", "--cookie-file", str(secret), "--data-dir", str(data)]
    args += ["--host", HOST, "--bind-port", str(port), "--snapshot-entries", "50"]
    args += ["--snapshot-keep-entries", "5"]
    node = Node(args, log=tmp_path / "node.log", cwd=tmp_path)
    try:
        ticket = node.wait_ready(data / "cluster-ticket.txt")
        assert ClusterTicket.decode(ticket).cookie == COOKIE
        assert COOKIE.encode() not in Path(f"/proc/{node.proc.pid}/cmdline").read_bytes()
        assert "made the data dir private" in node.log()
        asyncio.run(load(ticket))
        backup = tmp_path / "backup.bin"
        res = cli(ticket, "cluster", "snapshot", "save", str(backup))
        assert res.code == 0, res.stderr
        assert file_mode(backup) == 0o600
    finally:
        node.stop()
    names = {p.name for p in data.rglob("*")}
    assert {"cluster-ticket.txt", "iroh_secret_key", "wal", "snap", "blobs"} <= names, names
    assert any(p.suffix == ".snap" for p in data.rglob("*")), names
    assert loose_entries(data) == []

    restored = tmp_path / "restored"
    res = subprocess.run(
        [sys.executable, "-m", "aspen.node", "restore", "--from", str(backup), "--data-dir", str(restored)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert res.returncode == 0, res.stderr
    assert "--cookie-file" in res.stdout  # the advice names the file option, not --cookie
    assert loose_entries(restored) == []


def test_cookie_file_from_the_environment(tmp_path: Path) -> None:
    secret = cookie_file(tmp_path)
    data = tmp_path / "data"
    args = ["--dev", "--data-dir", str(data), "--host", HOST, "--bind-port", str(free_port(HOST))]
    node = Node(args, log=tmp_path / "node.log", cwd=tmp_path, env=clean_env(ASPEN_COOKIE_FILE=str(secret)))
    try:
        assert ClusterTicket.decode(node.wait_ready(data / "cluster-ticket.txt")).cookie == COOKIE
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("case", "extra", "wanted"),
    [
        ("readable by others", [], "chmod 600"),
        ("given twice", ["--cookie", "another"], "give the cookie once"),
    ],
)
def test_unsafe_or_ambiguous_cookie_is_refused(
    tmp_path: Path, case: str, extra: list[str], wanted: str
) -> None:
    secret = cookie_file(tmp_path, perms=0o644 if case == "readable by others" else 0o600)
    res = subprocess.run(
        [
            *(sys.executable, "-m", "aspen.node", "--node-id", "1", "--data-dir", str(tmp_path / "data")),
            *("--host", HOST, "--cookie-file", str(secret), *extra),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert res.returncode == 2, res.stderr
    assert wanted in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_dev_mode_needs_no_setup_and_is_private(tmp_path: Path) -> None:
    # The README's quick start: `aspen-node --dev` in an empty directory, then `aspen-cli` there.
    node = Node(["--dev", "--host", HOST], log=tmp_path / "node.log", cwd=tmp_path)
    try:
        node.wait_ready(tmp_path / "aspen-data" / "cluster-ticket.txt")
        assert cli(None, "kv", "set", "hello", "world", cwd=tmp_path).code == 0
        got = cli(None, "kv", "get", "hello", cwd=tmp_path)
        assert got.code == 0 and "world" in got.stdout
    finally:
        node.stop()
    assert file_mode(tmp_path / "aspen-data" / "dev-cookie") == 0o600
    assert loose_entries(tmp_path / "aspen-data") == []
