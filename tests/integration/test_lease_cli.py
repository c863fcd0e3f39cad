"""Leases on a 3-node cluster of real processes, driven through `aspen-cli` and the client library.

Must show (issue 6, item 4, first half): a lease with attached keys expires → the keys are gone on
every node; a lease kept alive does not expire; after the leader is killed, the new leader expires
leases. Plus every `lease` command and `verify kv`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import NodeProcess, cli, majority_leader, running_cluster, wait_for

from aspen.api.errors import AspenError
from aspen.client import AspenClient, SyncAspenClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    with running_cluster(tmp_path_factory.mktemp("lease"), base=40) as nodes:
        yield nodes


def leader_of(nodes: list[NodeProcess]) -> NodeProcess:
    """The node a majority of `nodes` names as leader (polled until there is one)."""

    def find() -> NodeProcess | None:
        leader = majority_leader(nodes)
        return next((n for n in nodes if n.node_id == leader), None)

    return wait_for(find, timeout=60, interval=0.2, what="a leader")


def keys_on(node: NodeProcess, prefix: str, *, stale: bool) -> list[str]:
    """Keys under `prefix` as `node` serves them (its own state with `stale`, else linearizable)."""
    args = ["--json", "kv", "scan", prefix, "--limit", "1000"] + (["--stale"] if stale else [])
    res = cli(node.ticket, *args)
    assert res.code == 0, res.stderr
    return [e["key"] for e in res.json()["entries"]]


def stale_keys_via_client(node: NodeProcess, prefix: str) -> list[str] | None:
    try:
        with SyncAspenClient(node.ticket, timeout=3) as client:
            return [e.key for e in client.scan(prefix, stale=True).entries]
    except AspenError:
        return None


def test_every_lease_command_through_followers_and_leader(cluster: list[NodeProcess]) -> None:
    leader = leader_of(cluster)
    follower = next(n for n in cluster if n is not leader)
    t = follower.ticket  # writes are forwarded to the leader

    granted = cli(t, "--json", "lease", "grant", "300")
    assert granted.code == 0, granted.stderr
    doc = granted.json()
    assert doc == {"is_success": True, "lease_id": doc["lease_id"], "ttl_seconds": 300, "error": None}
    auto_id = doc["lease_id"]
    assert isinstance(auto_id, int) and auto_id > 0

    human = cli(t, "lease", "grant", "600", "--id", "7000")
    assert human.code == 0 and human.stdout.strip() == "Lease 7000 granted with TTL 600s", human.stderr

    again = cli(t, "--json", "lease", "grant", "5", "--id", "7000")
    assert again.code == 1 and again.json()["error"] == "lease 7000 already exists"
    zero = cli(t, "--json", "lease", "grant", "0")
    assert zero.code == 1 and zero.json()["is_success"] is False and "ttl" in zero.json()["error"]

    for i, node in enumerate(cluster):
        res = cli(node.ticket, "kv", "set", f"lease-cli/k{i}", f"v{i}", "--lease", "7000")
        assert res.code == 0 and res.stdout.strip() == "OK", res.stderr
    unknown = cli(t, "--json", "kv", "set", "lease-cli/x", "v", "--lease", "999999")
    assert unknown.code == 1 and unknown.json() == {
        "status": "failed",
        "key": "lease-cli/x",
        "error": "lease 999999 not found",
    }

    ttl = cli(leader.ticket, "--json", "lease", "ttl", "7000", "--keys").json()
    assert ttl["is_success"] is True and ttl["lease_id"] == 7000 and ttl["granted_ttl_seconds"] == 600
    assert 0 < ttl["remaining_ttl_seconds"] <= 600
    assert ttl["keys"] == ["lease-cli/k0", "lease-cli/k1", "lease-cli/k2"] and ttl["error"] is None
    ttl_human = cli(follower.ticket, "lease", "ttl", "7000", "--keys").stdout
    assert ttl_human.startswith("Lease 7000\n  Granted TTL: 600s\n  Remaining: ")
    assert "    lease-cli/k1" in ttl_human
    without_keys = cli(follower.ticket, "--json", "lease", "ttl", str(auto_id)).json()
    assert without_keys["keys"] is None and without_keys["granted_ttl_seconds"] == 300
    missing = cli(t, "--json", "lease", "ttl", "424242")
    assert missing.code == 1 and missing.json()["error"] == "Lease not found or expired"

    for node in cluster:
        listed = cli(node.ticket, "--json", "lease", "list").json()
        by_id = {entry["lease_id"]: entry for entry in listed["leases"]}
        assert listed["is_success"] is True and listed["error"] is None
        assert by_id[7000]["attached_keys"] == 3 and by_id[7000]["granted_ttl_seconds"] == 600
        assert by_id[auto_id]["attached_keys"] == 0
        assert set(by_id[7000]) == {
            "lease_id",
            "granted_ttl_seconds",
            "remaining_ttl_seconds",
            "attached_keys",
        }
    table = cli(t, "lease", "list").stdout
    assert "LEASE ID" in table and "7000" in table

    kept = cli(t, "--json", "lease", "keepalive", "7000")
    assert kept.code == 0 and kept.json() == {
        "is_success": True,
        "lease_id": 7000,
        "ttl_seconds": 600,
        "error": None,
    }
    assert cli(t, "lease", "keepalive", "7000").stdout.strip() == "Lease 7000 renewed. TTL: 600s"
    lost = cli(t, "--json", "lease", "keepalive", "31337")
    assert lost.code == 1 and lost.json()["is_success"] is False and lost.json()["error"] == "lease not found"

    # A key rewritten without the lease leaves it and survives the revocation.
    assert cli(t, "kv", "set", "lease-cli/k2", "plain").code == 0
    revoked = cli(t, "--json", "lease", "revoke", "7000")
    assert revoked.code == 0 and revoked.json() == {"is_success": True, "keys_deleted": 2, "error": None}
    for node in cluster:
        wait_for(lambda node=node: stale_keys_via_client(node, "lease-cli/") == ["lease-cli/k2"], timeout=30)
        assert keys_on(node, "lease-cli/", stale=False) == ["lease-cli/k2"]
    assert cli(t, "lease", "revoke", str(auto_id)).stdout.strip() == "Lease revoked. 0 key(s) deleted."
    # Like keepalive and ttl, a lease that is not there is a failure (issue 19; it was exit 0).
    unknown_revoke = cli(t, "--json", "lease", "revoke", "123456789")
    assert unknown_revoke.code == 1 and unknown_revoke.json() == {
        "is_success": False,
        "keys_deleted": None,
        "error": "lease not found",
    }
    human_unknown = cli(t, "lease", "revoke", "123456789")
    assert human_unknown.code == 1 and human_unknown.stdout.strip() == "Lease revoke failed: lease not found"
    assert cli(t, "--json", "lease", "ttl", "7000").code == 1
    assert cli(t, "lease", "list").stdout.strip() == "No active leases" or all(
        e["lease_id"] not in (7000, auto_id) for e in cli(t, "--json", "lease", "list").json()["leases"]
    )


def test_expired_lease_deletes_its_keys_on_every_node(cluster: list[NodeProcess]) -> None:
    t = cluster[0].ticket
    lease_id = cli(t, "--json", "lease", "grant", "6").json()["lease_id"]
    # Attached through every node with the client library (quick, well inside the TTL).
    for i, node in enumerate(cluster):
        with SyncAspenClient(node.ticket, timeout=10) as client:
            assert client.set_with_lease(f"expire/k{i}", b"v", lease_id).is_success
    assert cli(t, "kv", "set", "expire/unleased", "stays").code == 0
    # Every replica sees the attached keys before the expiry...
    for node in cluster:
        wait_for(lambda node=node: len(stale_keys_via_client(node, "expire/") or []) == 4, timeout=30)
    # ...and then none of them: the leader revoked the lease through Raft.
    for node in cluster:
        wait_for(
            lambda node=node: stale_keys_via_client(node, "expire/") == ["expire/unleased"],
            timeout=60,
            interval=0.2,
            what=f"leased keys gone on node {node.node_id}",
        )
    for node in cluster:
        assert keys_on(node, "expire/", stale=True) == ["expire/unleased"]
        assert keys_on(node, "expire/", stale=False) == ["expire/unleased"]
        ttl = cli(node.ticket, "--json", "lease", "ttl", str(lease_id), "--stale")
        assert ttl.code == 1 and ttl.json()["error"] == "Lease not found or expired"
        listed = cli(node.ticket, "--json", "lease", "list", "--stale").json()["leases"]
        assert lease_id not in [e["lease_id"] for e in listed]


def test_lease_kept_alive_by_the_client_does_not_expire(cluster: list[NodeProcess]) -> None:
    ticket = cluster[1].ticket

    async def scenario() -> tuple[int, list[bool]]:
        async with AspenClient(ticket, timeout=10) as client:
            async with client.lease(2, keepalive_every_s=0.5) as lease:
                assert (await client.set_with_lease("alive/k", b"v", lease.lease_id)).is_success
                # Hold it for three TTLs, checking all along that the key is still there.
                observed: list[bool] = []
                deadline = time.monotonic() + 6.0
                for _ in range(200):  # bounded; ends by the deadline
                    if time.monotonic() >= deadline:
                        break
                    observed.append((await client.get("alive/k")) == b"v")
                    await asyncio.sleep(0.1)  # pacing of the observation, not synchronisation
                assert not lease.lost.is_set(), lease.error
                still = await client.lease_ttl(lease.lease_id)
                assert still.is_success and still.granted_ttl_seconds == 2
                lease_id = lease.lease_id
            # Leaving the block revoked it: the key is gone.
            assert await client.get("alive/k") is None
            return lease_id, observed

    lease_id, observed = asyncio.run(scenario())
    assert observed and all(observed), observed
    assert cli(ticket, "--json", "lease", "ttl", str(lease_id)).code == 1


def test_verify_kv_and_blob_on_three_nodes(cluster: list[NodeProcess]) -> None:
    leader = leader_of(cluster)
    res = cli(leader.ticket, "--json", "verify", "kv", "--count", "4", "--prefix", "__vfy_")
    assert res.code == 0, res.stdout + res.stderr
    doc = res.json()
    assert doc["name"] == "kv-replication" and doc["passed"] is True
    assert doc["message"] == "4/4 keys verified, replication OK"
    assert set(doc) == {"name", "passed", "message", "duration_ms", "details", "timing", "nodes"}
    assert sorted(n["node_id"] for n in doc["nodes"]) == [1, 2, 3]
    assert all(n["status"] == "OK" for n in doc["nodes"])
    assert set(doc["timing"]) == {"write_ms", "replicate_ms", "read_ms", "cleanup_ms"}
    assert keys_on(leader, "__vfy_", stale=False) == []  # cleaned up
    kept = cli(cluster[2].ticket, "verify", "kv", "--count", "2", "--prefix", "__vfy2_", "--no-cleanup")
    assert kept.code == 0 and kept.stdout.startswith("[PASS] kv-replication"), kept.stdout + kept.stderr
    assert len(keys_on(cluster[0], "__vfy2_", stale=False)) == 2
    blob = cli(leader.ticket, "--json", "verify", "blob")
    assert blob.code == 0, blob.stdout + blob.stderr
    doc = blob.json()
    assert doc["name"] == "blob-storage" and doc["passed"] is True
    assert doc["message"].startswith("1024 bytes stored and read back")
    assert set(doc["timing"]) == {"add_ms", "read_ms", "cleanup_ms"}
    # Past the 4 MiB inline limit, through a follower: the bytes go over the data channel.
    big = cli(cluster[2].ticket, "verify", "blob", "--size", str(5 * 1024 * 1024))
    assert big.code == 0 and big.stdout.startswith("[PASS] blob-storage"), big.stdout + big.stderr


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    with running_cluster(tmp_path, base=50) as nodes:
        yield nodes


def test_new_leader_expires_leases_after_the_leader_is_killed(fresh_cluster: list[NodeProcess]) -> None:
    leader = leader_of(fresh_cluster)
    lease_id = cli(leader.ticket, "--json", "lease", "grant", "8").json()["lease_id"]
    with SyncAspenClient(leader.ticket, timeout=10) as client:
        for i in range(3):
            assert client.set_with_lease(f"failover/k{i}", b"v", lease_id).is_success
    survivors = [n for n in fresh_cluster if n is not leader]
    for node in survivors:
        wait_for(lambda node=node: len(stale_keys_via_client(node, "failover/") or []) == 3, timeout=30)
    ttl = cli(survivors[0].ticket, "--json", "lease", "ttl", str(lease_id), "--stale").json()
    assert ttl["is_success"] is True  # still alive when the leader dies: only a new leader can revoke it
    leader.kill9()
    new_leader = leader_of(survivors)
    assert new_leader is not leader
    for node in survivors:
        wait_for(
            lambda node=node: stale_keys_via_client(node, "failover/") == [],
            timeout=60,
            interval=0.2,
            what=f"leased keys gone on node {node.node_id} after failover",
        )
        assert keys_on(node, "failover/", stale=False) == []
    # The old leader comes back, catches up, and holds the same state as the others.
    leader.start()
    wait_for(
        lambda: stale_keys_via_client(leader, "failover/") == [], timeout=60, what="old leader caught up"
    )

    def hashes_agree() -> bool:
        seen = set()
        for node in fresh_cluster:
            try:
                with SyncAspenClient(node.ticket, timeout=3) as client:
                    seen.add(client.state_hash().state_hash)
            except AspenError:
                return False
        return len(seen) == 1

    # The hash covers the lease table too; all three agree once idle.
    assert cli(leader.ticket, "kv", "set", "failover/barrier", "x").code == 0
    wait_for(hashes_agree, timeout=60, interval=0.2, what="equal state hashes")


def test_leases_survive_a_snapshot_and_a_restart(node: NodeProcess) -> None:
    t = node.ticket
    assert cli(t, "lease", "grant", "300", "--id", "11").code == 0
    assert cli(t, "kv", "set", "persist/a", "1", "--lease", "11").code == 0
    assert cli(t, "cluster", "snapshot", "trigger").code == 0  # the lease table is in the snapshot...
    assert cli(t, "lease", "grant", "300", "--id", "12").code == 0  # ...and this one only in the WAL
    assert cli(t, "kv", "set", "persist/b", "2", "--lease", "12").code == 0
    assert node.stop() == 0
    node.start()
    t = node.ticket
    for lease_id, key in ((11, "persist/a"), (12, "persist/b")):
        ttl = cli(t, "--json", "lease", "ttl", str(lease_id), "--keys")
        assert ttl.code == 0 and ttl.json()["keys"] == [key], ttl.stdout + ttl.stderr
    # The id counter came back too: an automatic id is above both.
    assert cli(t, "--json", "lease", "grant", "5").json()["lease_id"] == 13
    assert cli(t, "--json", "lease", "revoke", "11").json()["keys_deleted"] == 1
    assert cli(t, "--json", "kv", "get", "persist/a").json()["does_exist"] is False
    assert cli(t, "kv", "get", "persist/b").stdout.strip() == "2"
