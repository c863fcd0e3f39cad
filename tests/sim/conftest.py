"""Seeds for the deterministic Raft simulator.

`--sim-seed=N` replays exactly one seed; `--sim-seeds=N` runs seeds 0..N-1 (default 200). The
options are registered in `tests/conftest.py`, because pytest only honours `pytest_addoption` in
the rootdir's conftests.
"""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("sim_seed")
        seeds = [one] if one is not None else list(range(metafunc.config.getoption("sim_seeds")))
        metafunc.parametrize("sim_seed", seeds)
