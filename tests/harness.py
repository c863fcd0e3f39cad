"""Real `aspen-node` processes and real `aspen-cli` invocations for integration and fault tests.

Rules kept here so every test keeps them: nodes bind loopback only; every wait polls a condition
with a deadline (no sleeps to synchronise); every process started is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

COOKIE = "integration-test-cookie"


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

    @property
    def ticket_path(self) -> Path:
        return self.data_dir / "cluster-ticket.txt"

    def start(self, *, timeout: float = 30.0) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ticket_path.exists():
            self.ticket_path.unlink()  # the node rewrites it when ready; its appearance is our signal
        self.log_path = self.data_dir.parent / f"node-{self.node_id}.log"
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
        wait_for(
            lambda: self.ticket_path.exists() or self.proc.poll() is not None,
            timeout=timeout,
            what=f"node {self.node_id} ticket",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.node_id} exited with {self.proc.returncode}:\n{self.log()}")
        return self

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
