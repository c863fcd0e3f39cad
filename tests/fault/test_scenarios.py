"""Fault scenarios against real 3-node clusters: every history must be linearizable and every
replica must end with the same state. CI runs one short run of a few; `slow` runs them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenarios import ALL_SCENARIOS, PARTITION_SCENARIOS, SOAK, ScenarioResult, run_isolated, run_scenario

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def run(scenario: str, seed: int, root: Path, *, soak: bool = False) -> ScenarioResult:
    if scenario in PARTITION_SCENARIOS:
        res = run_isolated(scenario, seed, root, "soak" if soak else "short")
    else:
        res = run_scenario(scenario, seed, root, SOAK) if soak else run_scenario(scenario, seed, root)
    if res.skipped:
        pytest.skip(res.skipped)
    return res


def assert_sound(res: ScenarioResult) -> None:
    assert res.faults_injected >= 1, res.message  # the message says why a run ended early
    assert res.linearizable, res.message
    # The run did real work on both sides of the fault, not just an empty history.
    assert res.ops_checked > 50, res
    assert res.converged_index > 0


@pytest.mark.parametrize("scenario", ["kill-restart", "kill-leader", "isolate-leader"])
def test_short_run_under_fault_is_linearizable_and_replicas_agree(scenario: str, tmp_path: Path) -> None:
    assert_sound(run(scenario, 1, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_long_run_under_fault_is_linearizable_and_replicas_agree(
    scenario: str, seed: int, tmp_path: Path
) -> None:
    assert_sound(run(scenario, seed, tmp_path, soak=True))
