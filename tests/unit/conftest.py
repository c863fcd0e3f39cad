"""Every unit test runs in its own empty directory with no ASPEN_* variables, so none depends on
where pytest was started (e.g. a checkout holding ./aspen-data/cluster-ticket.txt from
`aspen-node --dev`, which `aspen-cli` reads by default) or on the caller's environment.

Only the unit tier: integration tests run `aspen-cli` and `aspen-node` subprocesses through
tests/harness.py, some with a chosen cwd or ASPEN_* variables on purpose."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_from_cwd_and_aspen_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory of its own, not `tmp_path`: a test that lists or fills its `tmp_path` must not
    # find itself running there.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in list(os.environ):
        if name.startswith("ASPEN_"):
            monkeypatch.delenv(name)
