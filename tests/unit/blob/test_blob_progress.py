"""The CLI's transfer progress bar: only on a terminal, only for large transfers."""

from __future__ import annotations

import io

import pytest

from aspen.cli.blob import PROGRESS_MIN_BYTES, ProgressBar


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_tty_for_large_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTty()
    monkeypatch.setattr("sys.stderr", tty)
    bar = ProgressBar("upload")
    total = PROGRESS_MIN_BYTES * 4
    for done in range(0, total + 1, PROGRESS_MIN_BYTES):
        bar(done, total)
    bar.close()
    assert "upload" in tty.getvalue() and "100%" in tty.getvalue()


def test_no_progress_bar_off_a_tty_or_for_small_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    bar = ProgressBar("upload")
    bar(PROGRESS_MIN_BYTES * 2, PROGRESS_MIN_BYTES * 2)
    bar.close()
    tty = FakeTty()
    monkeypatch.setattr("sys.stderr", tty)
    small = ProgressBar("download")
    small(10, 100)
    small.close()
    assert pipe.getvalue() == "" and tty.getvalue() == ""
