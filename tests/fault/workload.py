"""Concurrent clients doing reads, writes and CAS on a few keys, recording a history for the checker.

Each client holds an `AspenClient` whose ticket names one node, so clients spread over the cluster:
a follower forwards writes to the leader and serves reads after a ReadIndex round. Each client is
sequential (one operation at a time), all clients run concurrently in one event loop in a thread of
their own, so the nemesis can act from the test's thread meanwhile.

How an outcome is classified (see aspen/client/client.py for which exception means what):

- A write/CAS that raised `OutcomeUnknownError` (a timeout, a connection lost after sending, a
  forwarding failure) is `unknown`: it may have been applied, now or later.
- `NotLeaderError`, `ConnectionFailedError` and `NotInitializedError` mean no node ordered it: `fail`.
- Anything else on a write (`ServiceUnavailableError`, `InternalError`, ...) is treated as `unknown`:
  being cautious there can only make the checker more permissive, never report a false violation.
- Any failed read is `fail` and is dropped by the checker.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from linearizability import CasResult, Kind, Op, Status

from aspen.api.errors import (
    AspenError,
    ConnectionFailedError,
    NotInitializedError,
    NotLeaderError,
    OutcomeUnknownError,
)
from aspen.client import AspenClient

DEFINITELY_NOT_APPLIED = (NotLeaderError, ConnectionFailedError, NotInitializedError)


@dataclass
class WorkloadConfig:
    keys: tuple[str, ...] = ("fk0", "fk1", "fk2")
    clients: int = 5
    max_ops_per_client: int = 400
    max_seconds: float = 30.0
    #: Per-operation client deadline; short, so a fault turns into `unknown` quickly.
    op_timeout: float = 2.0
    read_share: float = 0.5
    write_share: float = 0.3  # the rest are CAS
    seed: int = 0


@dataclass
class Workload:
    """Run with `start()`, let the nemesis work, then `stop()`. `history` holds every operation."""

    tickets: list[str]  # client i uses tickets[i % len(tickets)]
    config: WorkloadConfig = field(default_factory=WorkloadConfig)
    history: list[Op] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fault-workload", daemon=True)
        self._lock = threading.Lock()
        self.crash: BaseException | None = None
        self.last_read_error = ""

    # -- control --------------------------------------------------------------------------
    def start(self) -> Workload:
        self._thread.start()
        return self

    def stop(self) -> Workload:
        self._stop.set()
        # Bounded: every client op has its own deadline, so the thread ends within about one of them.
        self._thread.join(timeout=self.config.op_timeout * 4 + 10)
        if self._thread.is_alive():
            raise AssertionError("workload did not stop")
        if self.crash is not None:
            raise AssertionError(f"workload crashed: {self.crash!r}") from self.crash
        return self

    def count(self, status: Status | None = None) -> int:
        with self._lock:
            return sum(1 for o in self.history if status is None or o.status == status)

    def ok_since(self, mark: int) -> int:
        """Successful operations recorded after the first `mark` entries (progress probe)."""
        with self._lock:
            return sum(1 for o in self.history[mark:] if o.status == Status.OK)

    def mark(self) -> int:
        with self._lock:
            return len(self.history)

    # -- clients --------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run_all())
        except BaseException as exc:  # surfaced by stop()
            self.crash = exc

    async def _run_all(self) -> None:
        deadline = time.monotonic() + self.config.max_seconds
        await asyncio.gather(*(self._client(i, deadline) for i in range(self.config.clients)))

    def _record(self, op: Op) -> None:
        with self._lock:
            self.history.append(op)

    async def _client(self, proc: int, deadline: float) -> None:
        cfg = self.config
        rng = random.Random(cfg.seed * 1000 + proc)
        last_seen: dict[str, bytes | None] = {}
        async with AspenClient(self.tickets[proc % len(self.tickets)], timeout=cfg.op_timeout) as client:
            for seq in range(cfg.max_ops_per_client):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                key = rng.choice(cfg.keys)
                dice = rng.random()
                if dice < cfg.read_share:
                    op = await self._read(client, proc, key)
                    if op.status == Status.OK:
                        last_seen[key] = op.output
                else:
                    value = f"p{proc}-{seq}".encode()  # unique across the whole run
                    if dice < cfg.read_share + cfg.write_share:
                        op = await self._write(client, proc, key, value)
                    else:
                        op = await self._cas(client, proc, key, last_seen.get(key), value)
                    if op.status == Status.OK and (op.kind == Kind.WRITE or op.output.swapped):
                        last_seen[key] = value
                    elif op.kind == Kind.CAS and op.status == Status.OK:
                        last_seen[key] = op.output.actual
                self._record(op)
                if op.status != Status.OK:
                    await asyncio.sleep(0.05)  # back off while the cluster recovers

    async def _read(self, client: AspenClient, proc: int, key: str) -> Op:
        op = Op(proc, Kind.READ, key, None, time.monotonic())
        try:
            res = await client.read(key)
        except AspenError as err:
            self.errors[f"read {type(err).__name__}"] += 1
            self.last_read_error = f"{type(err).__name__}: {err}"
            op.complete, op.status = time.monotonic(), Status.FAIL
            return op
        op.complete, op.output = time.monotonic(), res.value if res.was_found else None
        return op

    async def _write(self, client: AspenClient, proc: int, key: str, value: bytes) -> Op:
        op = Op(proc, Kind.WRITE, key, value, time.monotonic())
        try:
            res = await client.set(key, value)
        except AspenError as err:
            return self._failed_write(op, err)
        op.complete = time.monotonic()
        if not res.is_success:  # a domain refusal (validation): nothing was ordered
            self.errors[f"write refused: {res.error}"] += 1
            op.status = Status.FAIL
        return op

    async def _cas(
        self, client: AspenClient, proc: int, key: str, expected: bytes | None, value: bytes
    ) -> Op:
        op = Op(proc, Kind.CAS, key, (expected, value), time.monotonic())
        try:
            res = await client.compare_and_swap(key, expected, value)
        except AspenError as err:
            return self._failed_write(op, err)
        op.complete = time.monotonic()
        if res.error:  # validation refusal, not a condition failure
            self.errors[f"cas refused: {res.error}"] += 1
            op.status = Status.FAIL
            return op
        op.output = CasResult(res.is_success, None if res.is_success else res.actual_value)
        return op

    def _failed_write(self, op: Op, err: AspenError) -> Op:
        self.errors[f"{op.kind} {type(err).__name__}"] += 1
        if isinstance(err, DEFINITELY_NOT_APPLIED):
            op.complete, op.status = time.monotonic(), Status.FAIL
        else:
            assert isinstance(err, AspenError)
            if not isinstance(err, OutcomeUnknownError):
                self.errors[f"{op.kind} treated as unknown: {type(err).__name__}"] += 1
            op.complete, op.status = None, Status.UNKNOWN
        return op

    # -- end of run -----------------------------------------------------------------------
    async def final_reads(self, tickets: list[str], *, timeout: float = 10.0) -> int:
        """After healing: read every key through every node; the reads join the history."""
        done = 0
        for i, ticket in enumerate(tickets):
            async with AspenClient(ticket, timeout=timeout) as client:
                for key in self.config.keys:
                    op = await self._read(client, 1000 + i, key)
                    if op.status != Status.OK:
                        raise AssertionError(
                            f"final read of {key} via node ticket {i} failed ({self.last_read_error}); "
                            f"errors during the run: {dict(self.errors)}"
                        )
                    self._record(op)
                    done += 1
        return done
