"""The Raft driver's last-resort apply guard (issue 19): a committed entry whose apply raises fails
only its own proposer (`ApplyFailed`, INTERNAL_ERROR on the wire), the applied index moves past it
on every replica, and the nodes keep committing. On the base code the raft loop died instead."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cluster_inproc import InProcCluster, write

from aspen.raft.errors import ApplyFailed

pytestmark = pytest.mark.integration


def test_an_entry_whose_apply_raises_fails_its_proposer_and_the_nodes_keep_serving(tmp_path: Path) -> None:
    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            assert (await write(leader, "before", b"1")).is_success
            for state in cluster.states.values():
                real = state.apply_batch

                def apply_batch(index: int, data: bytes, real: Any = real) -> list[Any]:
                    if b"poison" in data:  # a bug in the state machine, the same on every replica
                        raise RecursionError("simulated")
                    return real(index, data)

                state.apply_batch = apply_batch  # type: ignore[method-assign]
            with pytest.raises(ApplyFailed, match="could not be applied"):
                await write(leader, "poison", b"x")
            poisoned_at = leader.applied_index
            assert (await write(leader, "after", b"2")).is_success
            assert await cluster.converged(leader.applied_index)
            for node in cluster.nodes.values():
                assert node.applied_index > poisoned_at
            assert len(cluster.hashes()) == 1
            for state in cluster.states.values():
                assert "after" in state.kv and "poison" not in state.kv
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(go(), 60))
