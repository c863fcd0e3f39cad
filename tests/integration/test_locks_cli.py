"""Locks, rwlocks and rate limiters on a 3-node cluster of real processes, through `aspen-cli` and
the client: every `lock`, `rwlock` and `ratelimit` command, 5 contending clients never holding the
lock together, and a lock surviving a leader kill."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from harness import NodeProcess, cli, only, run_json, running_cluster, self_reported_leader, wait_for

from aspen.api.errors import AspenError
from aspen.client import AspenClient, CoordinationError, LockNotAcquired, SyncAspenClient
from aspen.rpc.ticket import ClusterTicket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    with running_cluster(tmp_path_factory.mktemp("locks"), base=60) as nodes:
        yield nodes


# ------------------------------------------------------------------------------------------ lock --
def test_every_lock_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    code, got = run_json(t1, "lock", "acquire", "L", "--holder", "a", "--ttl", "60000")
    assert code == 0 and got["is_success"] is True and got["fencing_token"] == 1
    assert set(got) == {
        "operation",
        "key",
        "is_success",
        "fencing_token",
        "holder_id",
        "deadline_ms",
        "error",
    }
    assert (got["operation"], got["key"], got["holder_id"], got["error"]) == ("acquire", "L", "a", None)
    deadline = got["deadline_ms"]
    assert isinstance(deadline, int) and deadline > 0
    # Held: try-acquire fails at once, acquire waits --timeout and then fails; both exit 1.
    code, held = run_json(t2, "lock", "try-acquire", "L", "--holder", "b", "--ttl", "1000")
    assert code == 1 and held["operation"] == "try_acquire" and held["is_success"] is False
    assert held["error"] == f"lock held by 'a' until {deadline}ms" and held["fencing_token"] is None
    code, waited = run_json(t3, "lock", "acquire", "L", "--holder", "b", "--ttl", "1000", "--timeout", "300")
    assert code == 1 and waited["error"] == "operation timed out: lock acquisition for '__coord:lock:L'"
    # Renew keeps the token; a wrong holder or token fails clearly.
    code, renewed = run_json(
        t3, "lock", "renew", "L", "--holder", "a", "--fencing-token", "1", "--ttl", "60000"
    )
    assert code == 0 and renewed["fencing_token"] == 1 and renewed["operation"] == "renew"
    code, wrong = run_json(t2, "lock", "release", "L", "--holder", "a", "--fencing-token", "7")
    assert code == 1 and wrong["error"] == "lock held by 'a' with token 1, not 'a' with token 7"
    code, wrong = run_json(t2, "lock", "renew", "L", "--holder", "b", "--fencing-token", "1", "--ttl", "5")
    assert code == 1 and wrong["error"] == "lock held by 'a' with token 1, not 'b' with token 1"
    code, released = run_json(t2, "lock", "release", "L", "--holder", "a", "--fencing-token", "1")
    assert code == 0 and released == {
        "operation": "release",
        "key": "L",
        "is_success": True,
        "fencing_token": None,
        "holder_id": "a",
        "deadline_ms": 0,
        "error": None,
    }
    # The next holder gets the next token (the counter survives the release) …
    res = cli(t1, "lock", "try-acquire", "L", "--holder", "b", "--ttl", "400")
    assert (res.code, res.stdout.strip()) == (0, "Lock acquired. Fencing token: 2")
    # … and after an expiry too: this acquire waits until b's 400 ms have passed.
    res = cli(t2, "lock", "acquire", "L", "--holder", "c", "--ttl", "60000", "--timeout", "20000")
    assert (res.code, res.stdout.strip()) == (0, "Lock acquired. Fencing token: 3")
    res = cli(t3, "lock", "renew", "L", "--holder", "b", "--fencing-token", "2", "--ttl", "1000")
    assert (
        res.code == 1
        and res.stdout.strip() == "renew failed: lock held by 'c' with token 3, not 'b' with token 2"
    )
    res = cli(t3, "lock", "renew", "L", "--holder", "c", "--fencing-token", "3", "--ttl", "1000")
    assert res.code == 0 and res.stdout.startswith("Lock renewed. New deadline: ")
    assert (
        cli(t1, "lock", "release", "L", "--holder", "c", "--fencing-token", "3").stdout.strip()
        == "Lock released."
    )
    # Bad input: a precise domain error (exit 1) or a usage error (exit 2); never a crash.
    code, zero = run_json(t1, "lock", "try-acquire", "L", "--holder", "d", "--ttl", "0")
    assert code == 1 and zero["error"] == "ttl_ms must be between 1 and 3600000"
    code, zero = run_json(t1, "lock", "acquire", "L", "--holder", "d", "--ttl", "10", "--timeout", "0")
    assert code == 1 and zero["error"] == "timeout_ms must be between 1 and 300000"
    code, empty = run_json(t2, "lock", "try-acquire", "", "--holder", "d", "--ttl", "10")
    assert code == 1 and empty["error"] == "key cannot be empty"
    code, nobody = run_json(t2, "lock", "try-acquire", "M", "--holder", "", "--ttl", "10")
    assert code == 1 and nobody["error"] == "holder id cannot be empty"
    assert cli(t3, "lock", "try-acquire", "L", "--holder", "d").code == 2  # --ttl is required
    assert cli(t3, "lock", "release", "L", "--holder", "d", "--fencing-token", "-1").code == 2
    # The record is a plain KV key, free but keeping its token.
    record = json.loads(cli(t3, "kv", "get", "__coord:lock:L").stdout)
    assert (record["holder_id"], record["fencing_token"], record["deadline_ms"]) == ("", 3, 0)


def test_lock_handle_and_lock_sets_through_the_client(cluster: list[NodeProcess]) -> None:
    async def go() -> None:
        async with AspenClient(only(cluster[1])) as c1, AspenClient(only(cluster[2])) as c2:
            async with c1.lock("H", ttl_ms=30_000) as token:
                assert token == 1
                other = c2.lock("H", ttl_ms=1_000)
                assert await other.try_acquire() is None
            assert await other.acquire(timeout_ms=5_000) == 2
            await other.release()
            # Lock sets: all or nothing, a token per member, the blocker named.
            blocker = c2.lock("S2", ttl_ms=30_000)
            await blocker.acquire()
            s = c1.lock_set(["S1", "S2", "S3"], ttl_ms=30_000)
            assert await s.try_acquire() is None
            res = await c1.lock_set_try_acquire(["S1", "S2", "S3"], "me", 30_000)
            assert (res.blocked_member, res.blocked_holder) == ("S2", blocker.holder_id)
            assert await c1.get("__coord:lock:S1") is None  # nothing taken
            await blocker.release()
            async with s as tokens:
                assert tokens == [1, 2, 1]
                assert await c2.lock("S3", ttl_ms=10).try_acquire() is None
                assert await s.renew() > 0
            assert await c2.lock("S3", ttl_ms=10).try_acquire() == 2
            # Read-write lock handle: readers share, the writer's token survives a downgrade.
            rw, other_rw = c1.rwlock("H-rw"), c2.rwlock("H-rw")
            async with rw.read(), other_rw.read():
                assert (await rw.status()).reader_count == 2
            async with rw.write() as token:
                assert token == 1 and (await other_rw.status()).writer_holder == rw.holder_id
                assert await rw.downgrade() == 1
                assert (await rw.status()).mode == "read"
            assert (await rw.status()).mode == "free"
            # Rate limiter handle (one token per 100 s: the test's speed does not matter).
            limiter = c2.rate_limiter("H-rate", capacity=2, rate=0.01)
            assert [await limiter.try_acquire() for _ in range(3)] == [True, True, False]
            assert await limiter.available() == 0
            await limiter.reset()
            assert await limiter.acquire(2) == 0
            with pytest.raises(CoordinationError, match="requested tokens exceed capacity"):
                await limiter.acquire(3)
            with pytest.raises(ValueError, match="positive finite"):
                c2.rate_limiter("H-rate", capacity=2, rate=float("nan"))

    asyncio.run(go())


# ---------------------------------------------------------------------------------------- rwlock --
def test_every_rwlock_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    code, free = run_json(t1, "rwlock", "status", "R")
    assert code == 0 and free == {
        "operation": "status",
        "name": "R",
        "is_success": True,
        "mode": "free",
        "fencing_token": None,
        "deadline_ms": None,
        "reader_count": 0,
        "writer_holder": None,
        "error": None,
    }
    assert cli(t1, "rwlock", "status", "R").stdout.strip() == "Mode: free"
    # Long TTLs: nothing may expire while a loaded machine runs this test.
    res = cli(t2, "rwlock", "read", "R", "--holder", "r1", "--ttl", "300000")
    assert (res.code, res.stdout.strip()) == (0, "Read lock acquired (readers: 1)")
    res = cli(t3, "rwlock", "try-read", "R", "--holder", "r2", "--ttl", "300000")
    assert (res.code, res.stdout.strip()) == (0, "Read lock acquired (readers: 2)")
    assert cli(t1, "rwlock", "status", "R").stdout.strip() == "Read mode (2 readers)"
    code, busy = run_json(t1, "rwlock", "try-write", "R", "--holder", "w")
    assert code == 1 and busy["error"] == "readers hold the lock" and busy["mode"] == "read"
    # Writer preference: a waiting writer holds off new readers, and gets the lock once the readers
    # are gone. It runs in the background while this test releases the readers.
    wait_args = ["rwlock", "write", "R", "--holder", "w", "--ttl", "300000", "--timeout", "60000"]
    writer = subprocess.Popen(
        [sys.executable, "-m", "aspen.cli", "--ticket", t1, "--json", *wait_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: json.loads(cli(t2, "kv", "get", "__coord:rwlock:R").stdout)["pending_writers"],
            timeout=30,
            interval=0.2,
            what="the writer to register as waiting",
        )
        code, refused = run_json(t2, "rwlock", "try-read", "R", "--holder", "r3")
        assert code == 1 and refused["error"] == "write lock pending"
        assert (
            cli(t2, "rwlock", "release-read", "R", "--holder", "r1").stdout.strip() == "Read lock released."
        )
        code, released = run_json(t3, "rwlock", "release-read", "R", "--holder", "r2")
        assert code == 0 and released["operation"] == "release_read" and released["reader_count"] == 0
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err
    won = json.loads(out)
    assert (won["operation"], won["mode"], won["fencing_token"], won["writer_holder"]) == (
        "write",
        "write",
        1,
        "w",
    )
    assert cli(t2, "rwlock", "status", "R").stdout.strip() == "Write mode (holder: w)"
    code, blocked = run_json(t3, "rwlock", "read", "R", "--holder", "r1", "--timeout", "200")
    assert code == 1 and blocked["error"] == "operation timed out: rwlock read acquisition"
    code, again = run_json(t3, "rwlock", "write", "R", "--holder", "w2", "--timeout", "200")
    assert code == 1 and again["error"] == "operation timed out: rwlock write acquisition"
    code, wrong = run_json(t1, "rwlock", "release-write", "R", "--holder", "w", "--fencing-token", "5")
    assert code == 1 and wrong["error"] == "fencing token mismatch: expected 1, got 5"
    # Downgrade keeps the token; the holder is now a reader.
    res = cli(t2, "rwlock", "downgrade", "R", "--holder", "w", "--fencing-token", "1")
    assert res.code == 0 and res.stdout.strip() == "Downgraded to read lock (readers: 1). Fencing token: 1"
    code, down = run_json(t3, "rwlock", "status", "R")
    assert (down["mode"], down["reader_count"], down["writer_holder"]) == ("read", 1, None)
    code, gone = run_json(t1, "rwlock", "release-write", "R", "--holder", "w", "--fencing-token", "1")
    assert code == 1 and gone["error"] == "no write lock held"
    assert cli(t1, "rwlock", "release-read", "R", "--holder", "w").code == 0
    code, nope = run_json(t1, "rwlock", "release-read", "R", "--holder", "w")
    assert code == 1 and nope["error"] == "reader 'w' not found"
    # The next writer gets the next token.
    code, second = run_json(t2, "rwlock", "try-write", "R", "--holder", "w2")
    assert code == 0 and second["operation"] == "try_write" and second["fencing_token"] == 2
    res = cli(t3, "rwlock", "release-write", "R", "--holder", "w2", "--fencing-token", "2")
    assert (res.code, res.stdout.strip()) == (0, "Write lock released.")
    code, bad = run_json(t3, "rwlock", "try-read", "R", "--holder", "x", "--ttl", "0")
    assert code == 1 and bad["error"] == "ttl_ms must be between 1 and 3600000"


# ------------------------------------------------------------------------------------- ratelimit --
def test_every_ratelimit_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    # A slow refill (one token per 100 s), so what the test sees does not depend on its own speed.
    bucket = ["--capacity", "5", "--rate", "0.01"]
    code, got = run_json(t1, "ratelimit", "try-acquire", "B", *bucket, "--tokens", "3")
    assert code == 0 and got == {
        "operation": "try_acquire",
        "key": "B",
        "is_success": True,
        "tokens_remaining": 2,
        "retry_after_ms": None,
        "error": None,
    }
    code, limited = run_json(t2, "ratelimit", "try-acquire", "B", *bucket, "--tokens", "5")
    assert code == 1 and limited["is_success"] is False and limited["error"] == "rate limited"
    retry = limited["retry_after_ms"]
    assert isinstance(retry, int) and 0 < retry <= 300_000 and limited["tokens_remaining"] is None
    human = cli(t3, "ratelimit", "try-acquire", "B", *bucket, "--tokens", "5")
    assert human.code == 1 and human.stdout.startswith("Rate limited. Retry after ")
    # acquire gives up at once when the tokens cannot come before its --timeout.
    code, short = run_json(t1, "ratelimit", "acquire", "B", *bucket, "--tokens", "5", "--timeout", "100")
    assert code == 1 and short["operation"] == "acquire" and short["error"] == "rate limited"
    code, avail = run_json(t2, "ratelimit", "available", "B", *bucket)
    assert code == 0 and avail["operation"] == "available" and avail["tokens_remaining"] == 2
    res = cli(t3, "ratelimit", "reset", "B", *bucket)
    assert (res.code, res.stdout.strip()) == (0, "OK (5 tokens remaining)")
    assert cli(t1, "ratelimit", "available", "B", *bucket).stdout.strip() == "OK (5 tokens remaining)"
    # acquire waits for the refill of an empty bucket (2 tokens at 4/s).
    fast = ["--capacity", "2", "--rate", "4"]
    assert cli(t2, "ratelimit", "try-acquire", "F", *fast, "--tokens", "2").code == 0
    code, waited = run_json(t3, "ratelimit", "acquire", "F", *fast, "--tokens", "2", "--timeout", "20000")
    assert code == 0 and waited["operation"] == "acquire" and waited["tokens_remaining"] == 0
    # More tokens than the capacity is an error result, not a crash; the node keeps serving.
    code, too_many = run_json(t1, "ratelimit", "try-acquire", "B", *bucket, "--tokens", "6")
    assert code == 1 and too_many["error"] == "requested tokens exceed capacity"
    code, too_many = run_json(t2, "ratelimit", "acquire", "B", *bucket, "--tokens", "6")
    assert code == 1 and too_many["error"] == "requested tokens exceed capacity"
    # --rate must be positive and finite: refused before anything is sent (exit 1); not a number: usage.
    for rate in ("0", "-1", "inf", "nan"):
        res = cli(t1, "ratelimit", "try-acquire", "B", "--capacity", "5", "--rate", rate)
        assert res.code == 1 and "rate must be a positive finite number" in res.stderr, rate
    assert cli(t1, "ratelimit", "try-acquire", "B", "--capacity", "5", "--rate", "fast").code == 2
    assert cli(t1, "ratelimit", "available", "B", "--capacity", "5", "--rate", "0.5").code == 0


# -------------------------------------------------------------------------------------- election --
def test_leader_election_terms_renewal_resign_and_expiry(cluster: list[NodeProcess]) -> None:
    async def renewals_seen(client: AspenClient, holder: str, term: int, count: int) -> None:
        """Poll (bounded) until the election lock was renewed `count` times by `holder` in `term`."""
        stamps: set[int] = set()
        deadline = time.monotonic() + 60
        while len(stamps) <= count:
            assert time.monotonic() < deadline, f"only {len(stamps) - 1} renewals seen"
            record = json.loads(await client.get("__coord:lock:election:sched") or b"{}")
            assert (record["holder_id"], record["fencing_token"]) == (holder, term)
            stamps.add(record["acquired_at_ms"])
            await asyncio.sleep(0.05)

    async def go() -> None:
        async with (
            AspenClient(only(cluster[0])) as c1,
            AspenClient(only(cluster[1])) as c2,
            AspenClient(only(cluster[2])) as c3,
        ):
            e1, e2 = c1.election("sched", ttl_ms=3_000), c2.election("sched", ttl_ms=3_000)
            term1 = await e1.campaign()
            assert e1.is_leader() and e1.term == term1
            with pytest.raises(LockNotAcquired):
                await e2.campaign(timeout_ms=300)
            # Automatic renewal keeps the term well past its TTL.
            await renewals_seen(c3, e1.candidate_id, term1, 3)
            assert e1.is_leader() and not e2.is_leader()
            # Resigning hands over at once, with the next term.
            waiting = asyncio.create_task(e2.campaign(timeout_ms=30_000))
            await e1.resign()
            term2 = await waiting
            assert term2 == term1 + 1 and e2.is_leader() and not e1.is_leader() and e1.term is None
            # A leader that stops renewing (frozen) loses the lock after its TTL: the next candidate
            # gets the next term, and the frozen one no longer believes it leads.
            await e2._stop_renewing()
            e3 = c3.election("sched", ttl_ms=3_000)
            term3 = await e3.campaign(timeout_ms=30_000)
            assert term3 == term2 + 1 and not e2.is_leader()
            await e3.resign()

    asyncio.run(go())


# ------------------------------------------------------------------------------ must show 3 (lock) --
CONTENDED_TTL_MS = 20_000


@dataclass(frozen=True)
class Hold:
    token: int
    acquired: float  # monotonic, when the acquire answered
    released: float  # monotonic, when the work ended and the release was sent
    client: int
    deadline_ms: int  # the lease's end on the leader's clock (Unix ms): another may take it after


def entering_at(nodes: list[NodeProcess], i: int) -> str:
    """A ticket naming every node, rotated by `i`: clients enter at different nodes and rotate away
    from a dead one."""
    full = ClusterTicket.decode(cli(only(nodes[0]), "--json", "cluster", "ticket").json()["ticket"])
    return ClusterTicket(cookie=full.cookie, peers=full.peers[i:] + full.peers[:i]).encode()


async def _contend(
    tickets: list[str],
    seconds: float,
    clients: int = 5,
    *,
    faults: bool = False,
    log: list[Hold] | None = None,
    failures: list[str] | None = None,
) -> tuple[list[Hold], int]:
    """`clients` clients entering at different nodes take the lock `contended` in turn for `seconds`;
    inside it each does an unguarded read-modify-write of a KV counter (lost updates if two
    overlapped). With `faults`, a failed request (a node being killed) skips that round."""
    stop = time.monotonic() + seconds
    holds = [] if log is None else log
    failed: list[str] = [] if failures is None else failures

    async def one(i: int) -> None:
        async with AspenClient(tickets[i % len(tickets)], timeout=30) as client:
            lock = client.lock("contended", ttl_ms=CONTENDED_TTL_MS, timeout_ms=30_000)
            for _ in range(100_000):
                if time.monotonic() >= stop:
                    break
                try:
                    token = await lock.acquire()
                except AspenError:
                    if not faults:
                        raise
                    failed.append("acquire")
                    continue
                acquired = time.monotonic()
                try:
                    value = int(await client.get("contended-count") or b"0")
                    await client.set("contended-count", str(value + 1).encode())
                except AspenError:
                    if not faults:
                        raise
                    failed.append("work")
                released = time.monotonic()
                assert lock.deadline_ms is not None
                holds.append(Hold(token, acquired, released, i, lock.deadline_ms))
                try:
                    await lock.release()
                except AspenError:
                    if not faults:
                        raise
                    failed.append("release")
                    lock.token = None  # it expires by itself

    await asyncio.gather(*(one(i) for i in range(clients)))
    async with AspenClient(tickets[0]) as client:
        count = int(await client.get("contended-count") or b"0")
    return holds, count


def check_holds(holds: list[Hold], count: int) -> dict[str, int]:
    by_token = sorted(holds, key=lambda h: h.token)
    tokens = [h.token for h in by_token]
    twice = [h for a, b in itertools.pairwise(by_token) if a.token == b.token for h in (a, b)]
    assert not twice, f"a fencing token was handed out twice: {twice}"
    # Two holds overlap if the next one was granted (leader's clock) before the previous one's lease
    # ended, and answered before the previous holder was done. A holder whose work outlasts its
    # lease (a request stuck on a killed leader for longer than the TTL) is overtaken by design:
    # that is what the fencing token is for.
    violations = sum(
        1
        for a, b in itertools.pairwise(by_token)
        if a.released > b.acquired and b.deadline_ms - CONTENDED_TTL_MS < a.deadline_ms
    )
    by_time = sorted(holds, key=lambda h: h.acquired)
    not_increasing = sum(1 for a, b in itertools.pairwise(by_time) if a.token >= b.token)
    return {
        "acquisitions": len(holds),
        "max_token": max(tokens, default=0),
        "overlaps": violations,
        "tokens_out_of_order": not_increasing,
        "lost_updates": len(holds) - count,
        "clients_served": len({h.client for h in holds}),
    }


@pytest.mark.parametrize("seconds", [8.0, pytest.param(30.0, marks=pytest.mark.slow)])
def test_five_clients_on_three_nodes_never_hold_the_lock_together(
    cluster: list[NodeProcess], seconds: float
) -> None:
    with SyncAspenClient(only(cluster[0])) as client:
        client.set("contended-count", b"0")
        start = json.loads(client.get("__coord:lock:contended") or b'{"fencing_token": 0}')["fencing_token"]
    holds, count = asyncio.run(_contend([only(n) for n in cluster], seconds))
    figures = check_holds(holds, count)
    print(f"{seconds:.0f} s, 5 clients on 3 nodes: {figures}")
    assert figures["overlaps"] == 0 and figures["tokens_out_of_order"] == 0 and figures["lost_updates"] == 0
    assert figures["clients_served"] == 5 and figures["acquisitions"] >= 5
    assert sorted(h.token for h in holds) == list(range(start + 1, start + 1 + len(holds)))


@pytest.mark.slow
def test_five_clients_keep_mutual_exclusion_through_a_leader_kill(cluster: list[NodeProcess]) -> None:
    tickets = [entering_at(cluster, i) for i in range(len(cluster))]
    holds: list[Hold] = []
    failures: list[str] = []
    with SyncAspenClient(only(cluster[0])) as client:
        client.set("contended-count", b"0")
    old = wait_for(lambda: _leader(cluster), timeout=30, what="a leader")
    victim = next(n for n in cluster if n.node_id == old)

    async def kill_the_leader_mid_run() -> None:
        deadline = time.monotonic() + 60
        while len(holds) < 40:  # kill once the run is well under way
            assert time.monotonic() < deadline, "contention never got going"
            await asyncio.sleep(0.05)
        victim.kill9()

    async def go() -> tuple[list[Hold], int]:
        killer = asyncio.create_task(kill_the_leader_mid_run())
        # Long enough to outlast the requests stuck on the dead leader (they time out after 30 s).
        result = await _contend(tickets, 45.0, faults=True, log=holds, failures=failures)
        await killer
        return result

    try:
        _, count = asyncio.run(go())
    finally:
        if victim.proc is None or victim.proc.poll() is not None:  # killed (a failure may come first)
            victim.start()
    figures = check_holds(holds, count)
    after_kill = sum(1 for h in holds if h.acquired > holds[39].acquired)
    print(
        f"45 s, 5 clients, leader {old} killed after 40 acquisitions: {figures}, "
        f"{after_kill} after the kill, failed requests: {len(failures)}"
    )
    assert figures["overlaps"] == 0 and figures["tokens_out_of_order"] == 0
    assert after_kill > 0, "no acquisition after the leader kill"
    wait_for(
        lambda: cli(only(victim), "kv", "get", "contended-count", "--timeout", "5000").code == 0,
        timeout=60,
        interval=0.5,
        what="the restarted node serving reads",
    )


# ------------------------------------------------------------------------------ must show 4 (lock) --
def _leader(nodes: list[NodeProcess]) -> int | None:
    leader = self_reported_leader(nodes)
    return None if leader is None else leader.node_id


def test_a_held_lock_survives_a_leader_kill(cluster: list[NodeProcess]) -> None:
    ticket = cli(only(cluster[0]), "--json", "cluster", "ticket").json()["ticket"]
    code, got = run_json(ticket, "lock", "acquire", "durable", "--holder", "keeper", "--ttl", "120000")
    assert code == 0
    token = got["fencing_token"]
    old = wait_for(lambda: _leader(cluster), timeout=30, what="a leader")
    victim = next(n for n in cluster if n.node_id == old)
    victim.kill9()
    survivors = [n for n in cluster if n is not victim]
    try:
        new = wait_for(lambda: _leader(survivors), timeout=60, interval=0.2, what="a new leader")
        assert new != old
        # Still held, by the same holder with the same token: a second holder cannot take it …
        code, held = run_json(ticket, "lock", "try-acquire", "durable", "--holder", "thief", "--ttl", "1000")
        assert (
            code == 1
            and held["holder_id"] == "keeper"
            and str(held["error"]).startswith("lock held by 'keeper'")
        )
        code, waited = run_json(
            ticket, "lock", "acquire", "durable", "--holder", "thief", "--ttl", "1000", "--timeout", "500"
        )
        assert code == 1 and waited["holder_id"] == "keeper"
        # … the holder renews it with its token on the new leader …
        args = ["--holder", "keeper", "--fencing-token", str(token), "--ttl", "120000"]
        code, renewed = run_json(ticket, "lock", "renew", "durable", *args)
        assert code == 0 and renewed["fencing_token"] == token
        for n in survivors:
            record = json.loads(cli(only(n), "kv", "get", "__coord:lock:durable").stdout)
            assert (record["holder_id"], record["fencing_token"]) == ("keeper", token)
        # … and after its release the next holder gets the next token.
        assert (
            cli(
                ticket, "lock", "release", "durable", "--holder", "keeper", "--fencing-token", str(token)
            ).code
            == 0
        )
        code, next_holder = run_json(
            ticket, "lock", "try-acquire", "durable", "--holder", "thief", "--ttl", "1000"
        )
        assert code == 0 and next_holder["fencing_token"] == token + 1
    finally:
        victim.start()
    wait_for(
        lambda: (
            '"thief"' in cli(only(victim), "kv", "get", "__coord:lock:durable", "--timeout", "5000").stdout
        ),
        timeout=60,
        interval=0.5,
        what="the restarted node serving the lock record",
    )
