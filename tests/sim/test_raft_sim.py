"""Seeded whole-cluster simulation of the Raft core (see `tests/sim/raftsim.py` for the invariants)."""

from __future__ import annotations

import random

from raftsim import SafetyViolation, Sim, SimParams, run_seed

from aspen.raft.core.plan import Send, Step, plan
from aspen.raft.core.types import HardState, Ready


def test_seed(sim_seed: int) -> None:
    # Any failure message starts with "seed=N"; replay with `pytest tests/sim --sim-seed=N`.
    assert run_seed(sim_seed) > 0


def test_replay_is_deterministic() -> None:
    a = Sim(7)
    a.run()
    b = Sim(7)
    b.run()
    assert a.steps == b.steps
    assert a.applied_map == b.applied_map
    assert a.leaders == b.leaders


def test_simulator_catches_unsafe_commit_rule() -> None:
    """Flip the §5.4.2 rule (commit previous-term entries by counting replicas) and check that
    the simulator finds a safety violation within a bounded seed search."""
    bound = 400
    for seed in range(bound):
        params = SimParams.harsh(random.Random(seed))
        params.unsafe_commit_previous_term = True
        try:
            Sim(seed, params).run()
        except SafetyViolation as exc:
            assert f"seed={seed}" in str(exc)
            print(f"unsafe commit rule caught on seed {seed}: {exc}")
            return
    raise AssertionError(f"simulator did not catch the unsafe commit rule in seeds 0..{bound - 1}")


def _send_before_persist(rd: Ready, saved: HardState) -> tuple[Step, ...]:
    """A wrong plan: votes and acknowledgements leave before what they promise is durable."""
    steps = plan(rd, saved)
    sends = [s for s in steps if isinstance(s, Send)]
    rest = [s for s in steps if not isinstance(s, Send)]
    return (*sends, *rest)


def test_simulator_runs_the_drivers_plan() -> None:
    assert Sim(0).planner is plan


def test_simulator_catches_send_before_persist() -> None:
    """Swap in a plan that sends before persisting: a crash before the write then loses a vote or
    an entry that a peer was already promised, and the simulator must report a safety violation."""
    bound = 200
    for seed in range(bound):
        try:
            run_seed(seed, SimParams.harsh(random.Random(seed)), _send_before_persist)
        except SafetyViolation as exc:
            assert f"seed={seed}" in str(exc)
            print(f"send before persist caught on seed {seed}: {exc}")
            return
    raise AssertionError(f"simulator did not catch send-before-persist in seeds 0..{bound - 1}")
