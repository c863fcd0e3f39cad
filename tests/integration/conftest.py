from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import NodeProcess, cli


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    """One initialised single-node cluster, stopped (by PID) after the test."""
    n = NodeProcess(node_id=1, data_dir=tmp_path / "node1").start()
    try:
        res = cli(n.ticket, "cluster", "init")
        assert res.code == 0, res.stderr
        yield n
    finally:
        n.stop()
