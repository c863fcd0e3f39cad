"""Options for the deterministic Raft simulator.

`--sim-seed=N` replays exactly one seed; `--sim-seeds=N` runs seeds 0..N-1 (default 200).
pytest only honours `pytest_addoption` in initial conftests, i.e. when `tests/sim` (or a path
under it) is named on the command line; otherwise the defaults apply.
"""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sim", "deterministic Raft simulator")
    group.addoption("--sim-seed", type=int, default=None, help="run only this simulator seed")
    group.addoption("--sim-seeds", type=int, default=DEFAULT_SEEDS, help="number of seeds to run")


def _opt(config: pytest.Config, name: str, default: int | None) -> int | None:
    try:
        value = config.getoption(name)
    except ValueError:  # option not registered (conftest not initial)
        return default
    return value if value is not None else default


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        one = _opt(metafunc.config, "sim_seed", None)
        if one is not None:
            seeds = [one]
        else:
            n = _opt(metafunc.config, "sim_seeds", DEFAULT_SEEDS) or DEFAULT_SEEDS
            seeds = list(range(n))
        metafunc.parametrize("sim_seed", seeds)
