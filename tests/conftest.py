from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Make `tests.harness` importable as `harness` from every tier.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_sessionstart(session: pytest.Session) -> None:
    # The integration tiers start ~1,000 `aspen-node`/`aspen-cli` processes. Where the environment
    # sets PYTHONDONTWRITEBYTECODE (this workplace's machines do), each of them would compile the package
    # from source again (~0.1 s each); bytecode written once here is read by all of them.
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "aspen"), quiet=1)


DEFAULT_SIM_SEEDS = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sim", "deterministic Raft simulator")
    group.addoption("--sim-seed", type=int, default=None, help="run only this simulator seed")
    group.addoption("--sim-seeds", type=int, default=DEFAULT_SIM_SEEDS, help="number of seeds to run")
    fuzz = parser.getgroup("fuzz", "frame fuzzing against a live node (tests/fault/test_fuzz.py)")
    fuzz.addoption(
        "--fuzz-frames", type=int, default=0, help="frames of the long fuzz run (default: its CI count)"
    )


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual login umask (files 0644, dirs 0755 unless a mode is forced); the node and the CLI
    started by a test inherit it, so a file-mode test shows what a user's node would write."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
