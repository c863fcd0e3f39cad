"""docs/protocol.md's table of declared operations is generated; it must match the declarations."""

from __future__ import annotations

from pathlib import Path

from aspen.api.optable import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


def test_the_docs_table_of_operations_is_current() -> None:
    text = DOC.read_text()
    assert render(text) == text, "run: python -m aspen.api.optable docs/protocol.md"
