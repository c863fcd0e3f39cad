"""`aspen-cli` answers input no request can carry with one line on stderr and exit 1, never a
traceback (issue 19, item 9). No node is needed: the client refuses before sending anything, so
the ticket points at a port where nothing listens."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aspen.cli import main as cli_main
from aspen.rpc.ticket import ClusterTicket, TicketPeer

TICKET = ClusterTicket(
    cookie="c", peers=(TicketPeer(endpoint_id="ab" * 32, addrs=("127.0.0.1:1",)),)
).encode()


def run_cli(*args: str | bytes) -> subprocess.CompletedProcess[str]:
    # Bytes arguments reach the process as the shell would pass `$'a\xff\xfe'`.
    cmd: list[str | bytes] = [sys.executable, "-m", "aspen.cli", "--ticket", TICKET, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def assert_one_clean_line(res: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert text in res.stderr, res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("kv", "set", b"a\xff\xfe", "v"),
        ("kv", "get", b"a\xff\xfe"),
        ("kv", "delete", b"a\xff\xfe"),
        ("--json", "kv", "set", b"a\xff\xfe", "v"),
    ],
)
def test_a_key_that_is_not_utf8_is_a_one_line_error(args: tuple[str | bytes, ...]) -> None:
    assert_one_clean_line(run_cli(*args), 1, "Error: INVALID_REQUEST: key is not valid UTF-8")


def test_a_lease_ttl_beyond_64_bits_is_a_one_line_error_with_the_range() -> None:
    res = run_cli("lease", "grant", "99999999999999999999999")
    assert_one_clean_line(res, 1, "lease ttl must be between 1 and 9000000000 seconds")


def test_scan_limit_zero_is_a_usage_error() -> None:
    res = run_cli("kv", "scan", "--limit", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "1<=x<=10000" in res.stderr, res.stderr


def test_an_unexpected_exception_is_one_line_with_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(cli_main.cli, "main", broken)
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["kv", "get", "k"])
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err == "Error: RuntimeError: disk on fire second line\n"
