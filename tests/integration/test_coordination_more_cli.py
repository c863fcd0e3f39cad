"""Semaphores, queues, barriers and the service registry on a 3-node cluster of real processes,
through `aspen-cli` (every command of reference §6.6 `semaphore`/`queue`/`barrier` and §6.8
`service`) and the client library, each command entering the cluster at a different node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from harness import NodeProcess, cli, only, run_json, running_cluster, self_reported_leader, wait_for

from aspen.client import AspenClient, OutcomeUnknownError, SyncAspenClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    # One cluster for the module: the tests use disjoint names, and forming costs seconds of CPU.
    with running_cluster(tmp_path_factory.mktemp("coord"), base=70) as nodes:
        yield nodes


# -------------------------------------------------------------------------------------- semaphore --
def test_every_semaphore_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    base = {"name": "pool", "error": None, "retry_after_ms": None}
    code, doc = run_json(
        t1,
        "semaphore",
        "try-acquire",
        "pool",
        "--holder",
        "a",
        "--capacity",
        "3",
        "--permits",
        "2",
        "--ttl",
        "600000",
    )
    assert (code, doc) == (
        0,
        {
            **base,
            "operation": "try_acquire",
            "is_success": True,
            "permits_acquired": 2,
            "available": 1,
            "max_permits": 3,
            "capacity_permits": 3,
        },
    )
    code, doc = run_json(
        t2,
        "semaphore",
        "acquire",
        "pool",
        "--holder",
        "b",
        "--capacity",
        "3",
        "--timeout",
        "5000",
        "--ttl",
        "600000",
    )
    assert code == 0 and doc["operation"] == "acquire" and doc["permits_acquired"] == 1
    assert doc["available"] == 0 and doc["capacity_permits"] == 3 == doc["max_permits"]
    # Full: try-acquire fails at once with a retry hint, acquire waits and then times out.
    code, full = run_json(t3, "semaphore", "try-acquire", "pool", "--holder", "c", "--capacity", "3")
    assert code == 1 and full["is_success"] is False and full["error"] is None
    assert isinstance(full["retry_after_ms"], int) and full["retry_after_ms"] > 0
    human = cli(t3, "semaphore", "try-acquire", "pool", "--holder", "c", "--capacity", "3")
    assert human.code == 1 and human.stdout.startswith("No permits available. Retry after ")
    code, timed_out = run_json(
        t3, "semaphore", "acquire", "pool", "--holder", "c", "--capacity", "3", "--timeout", "300"
    )
    assert code == 1 and timed_out["error"] == "semaphore acquire timeout"
    assert cli(t1, "semaphore", "status", "pool").stdout.strip() == "Available: 0/3"
    assert cli(t2, "semaphore", "release", "pool", "--holder", "a", "--permits", "1").stdout.strip() == (
        "Released (1/3 available)"
    )
    code, released = run_json(t3, "semaphore", "release", "pool", "--holder", "a")
    assert code == 0 and released["operation"] == "release" and released["available"] == 2
    human = cli(t1, "semaphore", "acquire", "pool", "--holder", "c", "--capacity", "3", "--permits", "2")
    assert human.code == 0 and human.stdout.strip() == "Acquired 2 permits (0/3 available)"
    code, st = run_json(t2, "semaphore", "status", "pool")
    assert (code, st["operation"], st["available"], st["capacity_permits"]) == (0, "status", 0, 3)
    # Bad input: a precise error and exit 1, or a usage error (exit 2).
    code, bad = run_json(t1, "semaphore", "try-acquire", "pool", "--holder", "", "--capacity", "3")
    assert code == 1 and bad["error"] == "holder id cannot be empty"
    assert cli(t1, "semaphore", "try-acquire", "pool", "--holder", "x", "--capacity", "0").code == 2


def test_semaphore_acquire_waits_for_a_release_and_ttl_expiry(cluster: list[NodeProcess]) -> None:
    t1, t2, _ = (only(n) for n in cluster)
    assert (
        cli(t1, "semaphore", "try-acquire", "one", "--holder", "a", "--capacity", "1", "--ttl", "600").code
        == 0
    )
    # Holder a is never released: its TTL (judged by the leader's clock) frees the permit.
    waited = cli(
        t2,
        "semaphore",
        "acquire",
        "one",
        "--holder",
        "b",
        "--capacity",
        "1",
        "--timeout",
        "20000",
        "--ttl",
        "600000",
    )
    assert waited.code == 0, waited.stdout + waited.stderr

    async def go() -> None:
        async with (
            AspenClient(only(cluster[2])) as client,
            client.semaphore("one", capacity=1, ttl_ms=30_000, timeout_ms=1) as held,
        ):
            raise AssertionError(f"acquired {held} while b holds the only permit")

    with pytest.raises(Exception, match="semaphore acquire timeout"):
        asyncio.run(go())

    async def release_then_acquire() -> int:
        async with AspenClient(only(cluster[2])) as client:
            await client.semaphore_release("one", "b")
            async with client.semaphore("one", capacity=1, ttl_ms=30_000) as held:
                status = await client.semaphore_status("one")
                assert status.available == 0
            status = await client.semaphore_status("one")
            assert status.available == 1
            return held

    assert asyncio.run(release_then_acquire()) == 1


def test_five_clients_on_three_nodes_never_exceed_the_capacity(cluster: list[NodeProcess]) -> None:
    inside, most, rounds = 0, 0, 5

    async def worker(node: NodeProcess, me: str) -> None:
        nonlocal inside, most
        async with AspenClient(only(node)) as client:
            for _ in range(rounds):
                async with client.semaphore(
                    "crit", capacity=2, ttl_ms=600_000, timeout_ms=120_000, holder_id=me
                ):
                    inside += 1
                    most = max(most, inside)
                    await client.counter("crit-work").incr()  # real work while holding a permit
                    inside -= 1

    async def go() -> int:
        await asyncio.gather(*(worker(cluster[i % 3], f"w{i}") for i in range(5)))
        async with AspenClient(only(cluster[0])) as client:
            return await client.counter("crit-work").get()

    assert asyncio.run(go()) == 5 * rounds
    assert 1 <= most <= 2
    print(f"5 clients x {rounds} acquisitions of a 2-permit semaphore: at most {most} holders at once")


# ------------------------------------------------------------------------------------------ queue --
def test_every_queue_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    assert run_json(
        t1, "queue", "create", "jobs", "--visibility-timeout", "60000", "--max-attempts", "2"
    ) == (
        0,
        {"is_success": True, "was_created": True, "error": None},
    )
    assert run_json(t2, "queue", "create", "jobs")[1]["was_created"] is False
    assert cli(t3, "queue", "create", "jobs").stdout.strip() == "Queue already exists"
    assert run_json(t2, "queue", "enqueue", "jobs", "first") == (
        0,
        {"is_success": True, "item_id": 1, "error": None},
    )
    assert cli(t3, "queue", "enqueue", "jobs", "second", "--group", "g", "--dedup", "d-2").stdout.strip() == (
        "Enqueued item 2"
    )
    # Same dedup id within the window: the original id, no new item.
    assert run_json(t1, "queue", "enqueue", "jobs", "again", "--dedup", "d-2")[1]["item_id"] == 2
    items = '[{"payload":"third","message_group_id":"g"},{"payload":"fourth","ttl_ms":600000}]'
    assert run_json(t1, "queue", "enqueue-batch", "jobs", "--items", items) == (
        0,
        {"is_success": True, "item_ids": [3, 4], "error": None},
    )
    code, peeked = run_json(t2, "queue", "peek", "jobs", "--max", "3")
    assert code == 0 and [i["payload"] for i in peeked["items"]] == ["first", "second", "third"]
    assert all(i["receipt_handle"] == "" and i["delivery_attempts"] == 0 for i in peeked["items"])
    # FIFO, and per group: "third" (group g) waits while "second" (group g) is in flight.
    code, got = run_json(
        t3, "queue", "dequeue", "jobs", "--consumer", "w1", "--visibility", "600000", "--max", "3"
    )
    assert code == 0 and [(i["item_id"], i["payload"], i["delivery_attempts"]) for i in got["items"]] == [
        (1, "first", 1),
        (2, "second", 1),
        (4, "fourth", 1),
    ]
    receipts = {i["payload"]: i["receipt_handle"] for i in got["items"]}
    assert set(got) == {"is_success", "items", "error"}
    assert set(got["items"][0]) == {"item_id", "receipt_handle", "payload", "delivery_attempts"}
    code, st = run_json(t1, "queue", "status", "jobs")
    assert (code, st) == (
        0,
        {
            "is_success": True,
            "queue_name": "jobs",
            "visible_count": 1,
            "pending_count": 3,
            "dlq_count": 0,
            "error": None,
        },
    )
    assert cli(t2, "queue", "status", "jobs").stdout.strip().splitlines() == [
        "Queue: jobs",
        "Visible: 1",
        "Pending: 3",
        "DLQ: 0",
    ]
    assert run_json(t1, "queue", "ack", "jobs", receipts["first"]) == (
        0,
        {"operation": "ack", "is_success": True, "error": None},
    )
    code, again = run_json(t2, "queue", "ack", "jobs", receipts["first"])
    assert code == 1 and again["error"] == "item not found or already processed"
    code, bad = run_json(t2, "queue", "ack", "jobs", "not-a-receipt")
    assert code == 1 and bad["error"] == "invalid receipt handle format"
    code, ext = run_json(t3, "queue", "extend", "jobs", receipts["fourth"], "--add", "120000")
    assert (code, ext) == (0, {"operation": "extend", "is_success": True, "error": None})
    # Acking "second" frees group g: "third" is handed out next.
    assert cli(t1, "queue", "ack", "jobs", receipts["second"]).stdout.strip() == "OK"
    code, got = run_json(t2, "queue", "dequeue", "jobs", "--consumer", "w2", "--visibility", "600000")
    assert [i["payload"] for i in got["items"]] == ["third"]
    third = got["items"][0]["receipt_handle"]
    # nack without --to-dlq: visible again at once; the attempts are kept (max 2 → DLQ at the next
    # delivery's nack).
    assert run_json(t3, "queue", "nack", "jobs", third)[1] == {
        "operation": "nack",
        "is_success": True,
        "error": None,
    }
    code, got = run_json(t1, "queue", "dequeue", "jobs", "--consumer", "w3", "--visibility", "600000")
    assert [(i["payload"], i["delivery_attempts"]) for i in got["items"]] == [("third", 2)]
    third = got["items"][0]["receipt_handle"]
    assert run_json(t2, "queue", "nack", "jobs", third, "--error", "still failing")[0] == 0
    code, dead = run_json(t3, "queue", "dlq", "jobs")
    assert code == 0 and [(i["item_id"], i["payload"]) for i in dead["items"]] == [(3, "third")]
    assert set(dead["items"][0]) == {"item_id", "receipt_handle", "payload", "delivery_attempts"}
    human = cli(t1, "queue", "dlq", "jobs").stdout.strip().splitlines()
    assert human == ["Found 1 item(s)", "[3] third (attempts: 2, reason: MaxDeliveryAttemptsExceeded)"]
    with SyncAspenClient(t2) as client:
        (letter,) = client.queue_dlq("jobs").items
        assert (letter.reason, letter.last_error) == ("MaxDeliveryAttemptsExceeded", "still failing")
    # Explicit dead-lettering.
    assert run_json(t1, "queue", "nack", "jobs", receipts["fourth"], "--to-dlq", "--error", "poison")[0] == 0
    code, dead = run_json(t2, "queue", "dlq", "jobs", "--max", "10")
    assert [i["item_id"] for i in dead["items"]] == [3, 4]
    with SyncAspenClient(t3) as client:
        assert [(i.item_id, i.reason, i.last_error) for i in client.queue_dlq("jobs", 10).items] == [
            (3, "MaxDeliveryAttemptsExceeded", "still failing"),
            (4, "ExplicitlyRejected", "poison"),
        ]
    assert run_json(t3, "queue", "redrive", "jobs", "4") == (
        0,
        {"operation": "redrive", "is_success": True, "error": None},
    )
    code, waited = run_json(
        t1, "queue", "dequeue-wait", "jobs", "--consumer", "w4", "--visibility", "600000", "--wait", "5000"
    )
    assert [(i["item_id"], i["delivery_attempts"]) for i in waited["items"]] == [(4, 1)]
    human = cli(
        t2, "queue", "dequeue-wait", "jobs", "--consumer", "w5", "--visibility", "1000", "--wait", "300"
    )
    assert human.code == 0 and human.stdout.strip() == "No items"
    code, deleted = run_json(t3, "queue", "delete", "jobs")
    assert (code, deleted) == (0, {"is_success": True, "items_deleted": 2, "error": None})
    code, gone = run_json(t1, "queue", "status", "jobs")
    assert code == 0 and gone["visible_count"] == gone["pending_count"] == gone["dlq_count"] == 0
    # Bad input: precise errors (exit 1) or usage errors (exit 2).
    code, bad = run_json(t1, "queue", "dequeue", "jobs", "--consumer", "", "--visibility", "10")
    assert code == 1 and bad["error"] == "consumer id cannot be empty"
    assert cli(t1, "queue", "enqueue-batch", "jobs", "--items", "[1]").code == 2
    assert cli(t1, "queue", "dequeue", "jobs", "--consumer", "x").code == 2


def test_dequeue_wait_returns_an_item_enqueued_while_waiting(cluster: list[NodeProcess]) -> None:
    async def go() -> list[bytes]:
        async with AspenClient(only(cluster[1])) as consumer, AspenClient(only(cluster[2])) as producer:

            async def take() -> list[bytes]:
                # A leader change can make a dequeue's outcome unknown: the item it may have
                # claimed comes back after the (short) visibility timeout, so just ask again.
                for _ in range(5):
                    try:
                        items = await consumer.queue("late").dequeue("w", visibility_ms=2_000, wait_ms=20_000)
                    except OutcomeUnknownError:
                        continue
                    return [item.payload for item in items]
                raise AssertionError("no dequeue outcome in 5 attempts")

            waiting = asyncio.ensure_future(take())
            # The dedup id makes the enqueue safe to repeat after an unknown outcome.
            for _ in range(5):
                try:
                    await producer.queue("late").enqueue(b"hello", dedup_id="late-1")
                    break
                except OutcomeUnknownError:
                    continue
            return await waiting

    assert asyncio.run(go()) == [b"hello"]


def test_consumers_on_three_nodes_get_each_item_exactly_once(cluster: list[NodeProcess]) -> None:
    total = 60

    async def consume(node: NodeProcess, name: str, ack: bool) -> list[tuple[int, bytes]]:
        got: list[tuple[int, bytes]] = []
        async with AspenClient(only(node), timeout=30) as client:
            q = client.queue("work")
            for _ in range(total):  # bounded: at most one round per item
                items = await q.dequeue(name, visibility_ms=60_000, max_items=2, wait_ms=1_000)
                if not items:
                    break
                for item in items:
                    got.append((item.item_id, item.payload))
                    if ack:
                        await q.ack(item.receipt_handle)
        return got

    async def go() -> list[list[tuple[int, bytes]]]:
        async with AspenClient(only(cluster[0])) as producer:
            q = producer.queue("work")
            assert await q.create(visibility_timeout_ms=60_000, max_delivery_attempts=0)
            for i in range(total):
                await q.enqueue(f"job-{i}".encode())
        return await asyncio.gather(*(consume(n, f"c{n.node_id}", True) for n in cluster))

    per_consumer = asyncio.run(go())
    every = sorted(item for got in per_consumer for item in got)
    assert every == [(i + 1, f"job-{i}".encode()) for i in range(total)]
    assert all(got == sorted(got) for got in per_consumer)  # each consumer sees FIFO order

    # Without acks: items come back after the visibility timeout, to another consumer.
    async def unacked() -> None:
        async with AspenClient(only(cluster[0])) as a, AspenClient(only(cluster[2])) as b:
            await a.queue("redeliver").enqueue(b"x")
            first = await a.queue("redeliver").dequeue("a", visibility_ms=500)
            assert [i.delivery_attempts for i in first] == [1]
            again = await b.queue("redeliver").dequeue("b", visibility_ms=60_000, wait_ms=20_000)
            assert [(i.item_id, i.delivery_attempts) for i in again] == [(first[0].item_id, 2)]
            with pytest.raises(Exception, match="receipt handle mismatch"):
                await a.queue("redeliver").ack(first[0].receipt_handle)
            await b.queue("redeliver").ack(again[0].receipt_handle)
            status = await a.queue("redeliver").status()
            assert (status.visible_count, status.pending_count, status.total_acked) == (0, 0, 1)

    asyncio.run(unacked())
    shares = [len(got) for got in per_consumer]
    print(f"3 consumers on nodes 1-3 dequeued {total} items, {shares} each: every item exactly once")


# ---------------------------------------------------------------------------------------- barrier --
def test_every_barrier_command_on_every_node(cluster: list[NodeProcess]) -> None:
    tickets = [only(n) for n in cluster]
    t1, t2, t3 = tickets
    assert run_json(t1, "barrier", "status", "sync") == (
        0,
        {
            "operation": "status",
            "name": "sync",
            "is_success": True,
            "current_count": 0,
            "required_count": 0,
            "phase": "waiting",
            "error": None,
        },
    )
    # Three participants on three nodes: each enter blocks until the third arrives.
    with ThreadPoolExecutor(3) as pool:
        entered = list(
            pool.map(
                lambda tp: run_json(
                    tp[0], "barrier", "enter", "sync", "--participant", tp[1], "--count", "3"
                ),
                zip(tickets, ["a", "b", "c"], strict=True),
            )
        )
    for code, doc in entered:
        assert code == 0 and doc["operation"] == "enter" and doc["is_success"] is True
        assert doc["required_count"] == 3 and doc["phase"] in ("ready", "leaving")
    assert cli(t2, "barrier", "status", "sync").stdout.strip() == "OK (3/3 participants, phase: ready)"
    with ThreadPoolExecutor(3) as pool:
        left = list(
            pool.map(
                lambda tp: run_json(tp[0], "barrier", "leave", "sync", "--participant", tp[1]),
                zip(tickets, ["a", "b", "c"], strict=True),
            )
        )
    for code, doc in left:
        assert (code, doc["operation"], doc["phase"], doc["current_count"]) == (0, "leave", "completed", 0)
    # Timeouts: a lone participant is not let through; a leave waits for the others to leave.
    code, lonely = run_json(
        t3, "barrier", "enter", "solo", "--participant", "a", "--count", "2", "--timeout", "300"
    )
    assert code == 1 and lonely["error"] == "barrier enter timeout" and lonely["current_count"] == 1
    human = cli(t1, "barrier", "enter", "solo", "--participant", "b", "--count", "2")
    assert human.code == 0 and human.stdout.strip() == "OK (2/2 participants, phase: ready)"
    code, waiting = run_json(t2, "barrier", "leave", "solo", "--participant", "a", "--timeout", "300")
    assert code == 1 and waiting["error"] == "barrier leave timeout" and waiting["phase"] == "leaving"
    assert run_json(t3, "barrier", "leave", "solo", "--participant", "b")[1]["phase"] == "completed"
    code, bad = run_json(t1, "barrier", "leave", "solo", "--participant", "zed")
    assert code == 0 and bad["phase"] == "completed"  # nothing to leave: the round is over
    code, bad = run_json(t1, "barrier", "enter", "x", "--participant", "", "--count", "2")
    assert code == 1 and bad["error"] == "participant id cannot be empty"
    assert cli(t1, "barrier", "enter", "x", "--participant", "p", "--count", "0").code == 2


def test_barrier_handle_releases_every_client_together(cluster: list[NodeProcess]) -> None:
    async def worker(node: NodeProcess, me: str) -> tuple[bool, str]:
        async with AspenClient(only(node)) as client:
            async with client.barrier("phase", me, count=3) as entered:
                # Released only once all three were in (a fast one may already be leaving).
                released = entered.phase in ("ready", "leaving") and entered.required_count == 3
            status = await client.barrier_status("phase")
            return released, status.phase

    async def go() -> list[tuple[bool, str]]:
        return await asyncio.gather(*(worker(n, f"w{n.node_id}") for n in cluster))

    # Everyone was released, and nobody got out of the leave before everyone had left.
    assert asyncio.run(go()) == [(True, "completed")] * 3


# ---------------------------------------------------------------------------------------- service --
def test_every_service_command_on_every_node(cluster: list[NodeProcess]) -> None:
    t1, t2, t3 = (only(n) for n in cluster)
    code, reg = run_json(
        t1, "service", "register", "api", "api-1", "10.0.0.1:80", "--tags", "eu,gpu", "--ttl", "600000"
    )
    assert code == 0 and reg["is_success"] is True and reg["error"] is None
    token1 = reg["fencing_token"]
    assert isinstance(token1, int)
    human = cli(
        t2,
        "service",
        "register",
        "api",
        "api-2",
        "10.0.0.2:80",
        "--svc-version",
        "2.1.0",
        "--weight",
        "7",
        "--ttl",
        "600000",
    )
    assert human.code == 0 and human.stdout.startswith("Registered api/api-2. Fencing token: ")
    token2 = int(human.stdout.strip().rsplit(" ", 1)[1])
    assert token2 > token1
    assert run_json(t3, "service", "register", "web", "w-1", "10.0.0.3:80", "--ttl", "600000")[0] == 0
    code, found = run_json(t3, "service", "discover", "api")
    assert (code, found) == (
        0,
        {
            "is_success": True,
            "instances": [
                {
                    "instance_id": "api-1",
                    "address": "10.0.0.1:80",
                    "version": "1.0.0",
                    "health": "healthy",
                    "weight": 100,
                },
                {
                    "instance_id": "api-2",
                    "address": "10.0.0.2:80",
                    "version": "2.1.0",
                    "health": "healthy",
                    "weight": 7,
                },
            ],
            "error": None,
        },
    )
    assert [
        i["instance_id"] for i in run_json(t1, "service", "discover", "api", "--tags", "gpu")[1]["instances"]
    ] == ["api-1"]
    by_version = run_json(t2, "service", "discover", "api", "--version-prefix", "2.")[1]["instances"]
    assert [i["instance_id"] for i in by_version] == ["api-2"]
    assert run_json(t1, "service", "list")[1] == {
        "is_success": True,
        "services": ["api", "web"],
        "error": None,
    }
    assert run_json(t2, "service", "list", "a", "--limit", "5")[1]["services"] == ["api"]
    code, got = run_json(t3, "service", "get", "api", "api-1")
    assert code == 0 and got["was_found"] is True and got["instance"]["fencing_token"] == token1
    assert got["instance"]["tags"] == ["eu", "gpu"]
    assert run_json(t1, "service", "get", "api", "nope")[1]["was_found"] is False
    ok = {"is_success": True, "error": None}
    hb = run_json(t2, "service", "heartbeat", "api", "api-1", "--fencing-token", str(token1))
    assert hb == (0, {"operation": "heartbeat", **ok})
    health = run_json(
        t3, "service", "health", "api", "api-1", "--fencing-token", str(token1), "--status", "unhealthy"
    )
    assert health == (0, {"operation": "health", **ok})
    healthy = run_json(t1, "service", "discover", "api", "--healthy-only")[1]["instances"]
    assert [i["instance_id"] for i in healthy] == ["api-2"]
    update = run_json(
        t1,
        "service",
        "update",
        "api",
        "api-2",
        "--fencing-token",
        str(token2),
        "--svc-version",
        "2.2.0",
        "--weight",
        "9",
    )
    assert update == (0, {"operation": "update", **ok})
    assert run_json(t2, "service", "get", "api", "api-2")[1]["instance"]["version"] == "2.2.0"
    # A stale token is refused; re-registering hands out a new one.
    code, stale = run_json(t3, "service", "heartbeat", "api", "api-2", "--fencing-token", str(token1))
    assert code == 1 and "fencing token mismatch" in str(stale["error"])
    code, dereg = run_json(t1, "service", "deregister", "api", "api-1", "--fencing-token", str(token1))
    assert (code, dereg) == (0, {"operation": "deregister", **ok})
    code, gone = run_json(t2, "service", "heartbeat", "api", "api-1", "--fencing-token", str(token1))
    assert code == 1 and gone["error"] == "instance not found"
    # Bad input: usage errors (exit 2) and precise domain errors (exit 1).
    assert cli(t1, "service", "health", "api", "api-2", "--fencing-token", "1", "--status", "sick").code == 2
    code, bad = run_json(t1, "service", "register", "api", "", "10.0.0.9:80")
    assert code == 1 and bad["error"] == "instance id cannot be empty"


def test_expired_instances_are_gone_on_every_node(cluster: list[NodeProcess]) -> None:
    async def go() -> None:
        async with AspenClient(only(cluster[0])) as client:
            registry = client.service_registry()
            first = await registry.register("short", "s-1", "10.1.0.1:80", ttl_ms=600_000)
            assert [i.instance_id for i in await registry.discover("short")] == ["s-1"]
            # Re-registering replaces the instance (new token) and here gives it a 1 ms TTL.
            token = await registry.register("short", "s-1", "10.1.0.1:80", ttl_ms=1)
            assert token > first
        for node in cluster:
            async with AspenClient(only(node)) as client:
                registry = client.service_registry()
                # Expiry is judged against the TTL: poll until each node no longer lists it.
                for _ in range(200):
                    if not await registry.discover("short"):
                        break
                    await asyncio.sleep(0.05)
                assert await registry.discover("short") == []
                assert await registry.get("short", "s-1") is None
                assert "short" not in await registry.services()
        async with AspenClient(only(cluster[2])) as client:
            with pytest.raises(Exception, match="instance not found"):
                await client.service_registry().heartbeat("short", "s-1", token)

    asyncio.run(go())


# ------------------------------------------------------------------------------ leader failover --
def test_queue_and_semaphore_state_survive_a_leader_kill(cluster: list[NodeProcess]) -> None:
    # Runs last in this module: it kills the leader and restarts it.
    ticket = cli(only(cluster[0]), "--json", "cluster", "ticket").json()["ticket"]
    for payload in ("one", "two", "three"):
        assert cli(ticket, "queue", "enqueue", "durable", payload).code == 0
    code, got = run_json(ticket, "queue", "dequeue", "durable", "--consumer", "c", "--visibility", "600000")
    assert code == 0 and [i["payload"] for i in got["items"]] == ["one"]
    receipt = got["items"][0]["receipt_handle"]
    assert (
        cli(
            ticket, "semaphore", "try-acquire", "dur", "--holder", "h", "--capacity", "2", "--ttl", "600000"
        ).code
        == 0
    )
    victim = wait_for(lambda: self_reported_leader(cluster), timeout=30, what="a leader")
    victim.kill9()
    survivors = [n for n in cluster if n is not victim]
    try:
        wait_for(lambda: self_reported_leader(survivors), timeout=60, interval=0.2, what="a new leader")
        # The pending delivery, its receipt, the FIFO position, the id sequence and the holder survived.
        assert run_json(ticket, "queue", "ack", "durable", receipt)[1]["is_success"] is True
        code, got = run_json(
            ticket, "queue", "dequeue", "durable", "--consumer", "c", "--visibility", "600000"
        )
        assert [(i["item_id"], i["payload"]) for i in got["items"]] == [(2, "two")]
        assert run_json(ticket, "queue", "enqueue", "durable", "four")[1]["item_id"] == 4
        assert cli(ticket, "semaphore", "status", "dur").stdout.strip() == "Available: 1/2"
    finally:
        victim.start()
    expected = {"visible_count": 2, "pending_count": 1, "dlq_count": 0}

    def restarted_node_agrees() -> bool:
        res = cli(only(victim), "--json", "--timeout", "5000", "queue", "status", "durable")
        return res.code == 0 and {k: res.json()[k] for k in expected} == expected

    wait_for(restarted_node_agrees, timeout=60, interval=0.5, what="the restarted node serving the queue")
