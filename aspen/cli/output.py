"""Printers: commands build an `Output` (a JSON document and a human string); these render it.

JSON goes to stdout, pretty-printed (or compact on one line where the reference says so);
diagnostics go to stderr. Bytes become a UTF-8 string when valid, else `{"base64": "..."}`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import click

#: Click types of the wire's integer ranges.
U64 = click.IntRange(min=0, max=2**64 - 1)
U32 = click.IntRange(min=0, max=2**32 - 1)


def json_bytes(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def human_bytes(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary: {len(value)} bytes>"


@dataclass(frozen=True, slots=True)
class Output:
    doc: dict[str, Any]
    human: str
    #: One-line JSON (reference: "compact"), else pretty-printed.
    compact: bool = False
    #: False: the command failed in the domain (exit 1 after printing).
    ok: bool = True
    #: The command already wrote its result (raw bytes) to stdout: print nothing after it.
    printed: bool = False


class CommandFailed(click.ClickException):
    """Exit 1 after the output was printed (a domain failure such as a CAS conflict)."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("")

    def show(self, file: Any = None) -> None:  # the output already said what happened
        return None


def emit(out: Output, as_json: bool) -> None:
    if out.printed:
        pass
    elif as_json:
        text = json.dumps(out.doc, separators=(",", ":")) if out.compact else json.dumps(out.doc, indent=2)
        click.echo(text)
    elif out.human:
        click.echo(out.human)
    if not out.ok:
        raise CommandFailed()
