"""A blocking request that cannot succeed waits in the leader without proposing: the Raft log does
not grow while a `semaphore acquire` or a `lock acquire` waits 5 s for a holder that never lets go,
nor while a `queue dequeue-wait` waits 5 s on an empty queue. The wait enters the cluster at a
follower, which forwards it, so what is measured is the whole path.

The log index is read from every node's `cluster metrics` before and after the wait. Nothing else
proposes on an idle cluster, except a leader elected in between (its no-op entry): the measurement
is then repeated, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from harness import NodeProcess, cli, only, run_json, running_cluster, self_reported_leader

pytestmark = pytest.mark.integration

WAIT_MS = 5000
ATTEMPTS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    with running_cluster(tmp_path_factory.mktemp("waits"), base=100) as nodes:
        yield nodes


def _log_positions(nodes: list[NodeProcess]) -> list[tuple[int, int, int]]:
    """(term, last log index, applied index) of every node."""
    positions = []
    for node in nodes:
        code, doc = run_json(only(node), "cluster", "metrics")
        assert code == 0, doc
        positions.append((doc["current_term"], doc["last_log_index"], doc["last_applied"]))
    return positions


def _waits_without_entries(nodes: list[NodeProcess], wait: Callable[[str], None]) -> None:
    leader = self_reported_leader(nodes)
    assert leader is not None
    follower = next(n for n in nodes if n is not leader)
    for _ in range(ATTEMPTS):
        before = _log_positions(nodes)
        wait(only(follower))
        after = _log_positions(nodes)
        print(f"(term, last log, applied) per node before the {WAIT_MS} ms wait: {before}, after: {after}")
        if {t for t, _, _ in before + after} != {before[0][0]}:
            continue  # an election in between appended its no-op entry: measure again
        assert after == before
        return
    pytest.fail(f"the term changed during each of {ATTEMPTS} measurements")


def test_a_waiting_semaphore_acquire_proposes_nothing(cluster: list[NodeProcess]) -> None:
    leader = self_reported_leader(cluster)
    assert leader is not None
    held = ["semaphore", "try-acquire", "pool", "--holder", "a", "--capacity", "1", "--ttl", "600000"]
    assert cli(only(leader), *held).code == 0

    def wait(ticket: str) -> None:
        code, doc = run_json(
            ticket, "semaphore", "acquire", "pool", "--holder", "b", "--capacity", "1",
            "--timeout", str(WAIT_MS),
        )  # fmt: skip
        assert (code, doc["is_success"], doc["error"]) == (1, False, "semaphore acquire timeout"), doc

    _waits_without_entries(cluster, wait)


def test_a_waiting_lock_acquire_proposes_nothing(cluster: list[NodeProcess]) -> None:
    leader = self_reported_leader(cluster)
    assert leader is not None
    assert cli(only(leader), "lock", "try-acquire", "res", "--holder", "a", "--ttl", "600000").code == 0

    def wait(ticket: str) -> None:
        code, doc = run_json(
            ticket, "lock", "acquire", "res", "--holder", "b", "--ttl", "1000", "--timeout", str(WAIT_MS)
        )
        assert (code, doc["is_success"], doc["holder_id"]) == (1, False, "a"), doc
        assert doc["error"].startswith("operation timed out"), doc

    _waits_without_entries(cluster, wait)


def test_a_waiting_dequeue_proposes_nothing(cluster: list[NodeProcess]) -> None:
    leader = self_reported_leader(cluster)
    assert leader is not None
    assert cli(only(leader), "queue", "create", "idle").code == 0

    def wait(ticket: str) -> None:
        code, doc = run_json(
            ticket, "queue", "dequeue-wait", "idle", "--consumer", "c", "--visibility", "1000",
            "--wait", str(WAIT_MS),
        )  # fmt: skip
        assert (code, doc["items"]) == (0, []), doc

    _waits_without_entries(cluster, wait)
