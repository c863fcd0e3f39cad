"""Seeded whole-cluster simulation of the Raft core (see `tests/sim/raftsim.py` for the invariants)."""

from __future__ import annotations

import random

from raftsim import SafetyViolation, Sim, SimParams, run_seed


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
