from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Make `tests.harness` importable as `harness` from every tier.
sys.path.insert(0, str(Path(__file__).parent))


DEFAULT_SIM_SEEDS = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sim", "deterministic Raft simulator")
    group.addoption("--sim-seed", type=int, default=None, help="run only this simulator seed")
    group.addoption("--sim-seeds", type=int, default=DEFAULT_SIM_SEEDS, help="number of seeds to run")
