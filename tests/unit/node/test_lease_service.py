"""The node's lease handlers and the leader's sweeper, over a real `KvStateMachine`.

Proposals are applied straight to the machine (no Raft here: the cluster behaviour is covered by
tests/integration/test_lease_cli.py); clocks are explicit, so time is driven by the test.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aspen import kv
from aspen.api import lease_messages as lm
from aspen.node.leases import ERR_TTL_NOT_FOUND, LeaseExpirer, LeaseService
from aspen.raft.core.types import StateRole

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Applier:
    """Stands in for the Raft driver: applies each proposal at the next index; records the commands."""

    def __init__(self, machine: kv.KvStateMachine) -> None:
        self.machine = machine
        self.proposed: list[Any] = []
        self.role = StateRole.LEADER
        self.barriers: list[bool] = []

    async def propose(self, command: Any, size: int = 64, timeout: float = 10.0) -> Any:
        self.proposed.append(command)
        return self.machine.apply(self.machine.applied_index + 1, command)

    async def barrier(self, stale: bool = False) -> None:
        self.barriers.append(stale)


def setup() -> tuple[kv.KvStateMachine, Applier, Clock, LeaseService]:
    machine = kv.KvStateMachine()
    applier = Applier(machine)
    clock = Clock()
    return machine, applier, clock, LeaseService(machine, applier, clock)


def test_commands_carry_the_proposers_clock() -> None:
    machine, applier, clock, service = setup()

    async def go() -> None:
        granted = await service.grant(lm.LeaseGrant(ttl_seconds=10, lease_id=0))  # 0 = choose
        assert granted == lm.LeaseGrantResult(is_success=True, lease_id=1, ttl_seconds=10)
        clock.now += 4_000
        await service.keepalive(lm.LeaseKeepalive(lease_id=1))
        await service.write_with_lease(lm.WriteKeyWithLease(key="k", value=b"v", lease_id=1))

    asyncio.run(go())
    assert applier.proposed == [
        kv.LeaseGrant(10, T0, None),
        kv.LeaseKeepalive(1, T0 + 4_000),
        kv.WriteWithLease("k", b"v", 1, T0 + 4_000),
    ]
    assert machine.lease(1) == kv.LeaseInfo(1, 10, T0 + 14_000, 1)


def test_invalid_requests_are_answered_without_a_proposal() -> None:
    _, applier, _, service = setup()

    async def go() -> None:
        bad_ttl = await service.grant(lm.LeaseGrant(ttl_seconds=0))
        assert not bad_ttl.is_success and bad_ttl.error is not None and "ttl" in bad_ttl.error
        too_big = await service.revoke(lm.LeaseRevoke(lease_id=2**63))
        assert not too_big.is_success and too_big.error is not None and "lease id" in too_big.error
        empty_key = await service.write_with_lease(lm.WriteKeyWithLease(key="", value=b"", lease_id=1))
        assert empty_key.error == "key cannot be empty"

    asyncio.run(go())
    assert applier.proposed == []


def test_ttl_reads_use_the_readers_clock_and_honour_stale() -> None:
    _, applier, clock, service = setup()

    async def go() -> None:
        await service.grant(lm.LeaseGrant(ttl_seconds=10, lease_id=5))
        await service.write_with_lease(lm.WriteKeyWithLease(key="b", value=b"", lease_id=5))
        await service.write_with_lease(lm.WriteKeyWithLease(key="a", value=b"", lease_id=5))
        clock.now += 2_500
        ttl = await service.time_to_live(lm.LeaseTimeToLive(lease_id=5, include_keys=True))
        assert ttl == lm.LeaseTimeToLiveResult(
            is_success=True, lease_id=5, granted_ttl_seconds=10, remaining_ttl_seconds=7, keys=["a", "b"]
        )
        clock.now = T0 + 9_999  # under a second left reports 0
        listed = await service.list(lm.LeaseList(stale=True))
        assert listed.leases == [
            lm.LeaseListEntry(lease_id=5, granted_ttl_seconds=10, remaining_ttl_seconds=0, attached_keys=2)
        ]
        clock.now = T0 + 10_000  # expired by this reader's clock, though not yet revoked
        gone = await service.time_to_live(lm.LeaseTimeToLive(lease_id=5))
        assert gone == lm.LeaseTimeToLiveResult(is_success=False, lease_id=5, error=ERR_TTL_NOT_FOUND)
        assert (await service.list(lm.LeaseList())).leases == []

    asyncio.run(go())
    assert applier.barriers == [False, True, False, False]


def test_sweeper_revokes_only_on_the_leader_in_bounded_batches() -> None:
    machine, applier, clock, _ = setup()
    expirer = LeaseExpirer(applier, machine, clock=clock)  # type: ignore[arg-type]
    for _ in range(kv.MAX_EXPIRED_PER_COMMAND + 5):
        machine.apply(1, kv.LeaseGrant(1, T0))
    machine.apply(1, kv.WriteWithLease("k", b"v", 1, T0))
    machine.apply(1, kv.LeaseGrant(60, T0, 9_999))

    async def go() -> None:
        assert await expirer.sweep_once() is False  # nothing expired yet
        clock.now = T0 + 1_000
        applier.role = StateRole.FOLLOWER
        assert await expirer.sweep_once() is False  # followers never expire anything
        assert applier.proposed == []
        applier.role = StateRole.LEADER
        assert await expirer.sweep_once() is True  # a full batch: more may wait
        assert await expirer.sweep_once() is False

    asyncio.run(go())
    first, second = applier.proposed
    assert len(first.lease_ids) == kv.MAX_EXPIRED_PER_COMMAND and first.now_ms == T0 + 1_000
    assert len(second.lease_ids) == 5
    assert expirer.revoked_total == kv.MAX_EXPIRED_PER_COMMAND + 5
    assert "k" not in machine
    assert [info.lease_id for info in machine.leases()] == [9_999]
