"""The packaging files are well-formed: every Nix file parses, and the systemd unit passes
`systemd-analyze verify`. Each check skips, saying why, when its tool is not installed (Debian:
`apt-get install nix-bin` for nix-instantiate; systemd for systemd-analyze)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NIX_FILES = sorted((ROOT / "nix").rglob("*.nix"))
UNIT = ROOT / "contrib" / "aspen-node.service"


def test_the_packaging_files_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in NIX_FILES}
    assert {
        "nix/package.nix",
        "nix/module.nix",
        "nix/tests/single-node.nix",
        "nix/tests/cluster.nix",
    } <= names
    assert "nix/default.nix" in names
    assert UNIT.is_file()


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nix_file_parses(path: Path) -> None:
    tool = shutil.which("nix-instantiate")
    if tool is None:
        pytest.skip("nix-instantiate not installed (Debian/Ubuntu: apt-get install nix-bin)")
    res = subprocess.run([tool, "--parse", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (part of systemd)")
    # verify insists that ExecStart exists: check the unit as installed next to this interpreter's
    # aspen-node (the shipped path is /usr/local/bin/aspen-node, where pip puts it system-wide).
    node = Path(sys.executable).with_name("aspen-node")
    if not node.exists():
        pytest.skip(f"no aspen-node next to {sys.executable} to point ExecStart at")
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/aspen-node" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/usr/local/bin/aspen-node", str(node)))
    res = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    if res.returncode != 0 and "System has not been booted with systemd" in res.stderr:
        pytest.skip("systemd-analyze verify needs a systemd host")
    assert res.returncode == 0, res.stderr
    for hardening in (
        "DynamicUser=yes",
        "StateDirectory=aspen",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "EnvironmentFile=",
        "Restart=on-failure",
    ):
        assert hardening in text
