"""Global options, accepted before or after the subcommand (`aspen-cli --json kv get k` and
`aspen-cli kv get k --json` are the same), and the client they configure."""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from aspen.cli.output import Output, emit
from aspen.client.client import AspenClient
from aspen.rpc.loop import run as run_loop
from aspen.rpc.ticket import ClusterTicket

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TICKET_FILE = Path("aspen-data") / "cluster-ticket.txt"


@dataclass
class Settings:
    ticket: str | None = None
    as_json: bool = False
    timeout_ms: int = 30_000
    verbose: bool = False
    quiet: bool = False
    #: One id per invocation, sent with every request; nodes log it on failures and slow requests.
    request_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def resolve_ticket(self) -> ClusterTicket:
        raw = self.ticket or os.environ.get("ASPEN_TICKET")
        if raw and not raw.strip().startswith("aspen") and Path(raw).is_file():
            raw = Path(raw).read_text()
        if not raw and DEFAULT_TICKET_FILE.is_file():
            raw = DEFAULT_TICKET_FILE.read_text()
        if not raw:
            raise click.UsageError(
                "--ticket is required (or set ASPEN_TICKET, "
                "or run where ./aspen-data/cluster-ticket.txt exists)"
            )
        return ClusterTicket.decode(raw)


def _merge(ctx: click.Context, kwargs: dict[str, Any]) -> Settings:
    settings: Settings = ctx.ensure_object(Settings)
    ticket = kwargs.pop("ticket", None)
    if ticket:
        settings.ticket = ticket
    if kwargs.pop("as_json", False):
        settings.as_json = True
    timeout = kwargs.pop("timeout_ms", None)
    if timeout is not None:
        settings.timeout_ms = timeout
    if kwargs.pop("verbose", False):
        settings.verbose = True
    if kwargs.pop("quiet", False):
        settings.quiet = True
    return settings


def global_options(fn: F, *, from_env: bool = False) -> F:
    """The global options, for the root group (`from_env=True`) and for every leaf command.

    Only the root reads the environment (ASPEN_TICKET, ASPEN_JSON, ASPEN_TIMEOUT, ASPEN_VERBOSE,
    ASPEN_QUIET): the root runs first, so an explicit option on the leaf still overrides it, and a
    variable never overrides an explicit root option. A blocking leaf swaps `--timeout` for its wait
    (`waits`)."""

    def env(name: str) -> str | None:
        return name if from_env else None

    fn = click.option(
        "--ticket",
        envvar=env("ASPEN_TICKET"),
        help="Cluster ticket (aspen…) or a file holding one. Env: ASPEN_TICKET.",
    )(fn)
    fn = click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        envvar=env("ASPEN_JSON"),
        help="Print JSON. Env: ASPEN_JSON.",
    )(fn)
    fn = click.option(
        "--timeout",
        "timeout_ms",
        type=click.IntRange(min=1),
        default=None,
        envvar=env("ASPEN_TIMEOUT"),
        help="Per-request timeout in ms (default 30000). Env: ASPEN_TIMEOUT.",
    )(fn)
    fn = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        default=False,
        envvar=env("ASPEN_VERBOSE"),
        help="More diagnostics on stderr (with the request id). Env: ASPEN_VERBOSE.",
    )(fn)
    fn = click.option(
        "-q", "--quiet", is_flag=True, default=False, envvar=env("ASPEN_QUIET"), help="Fewer diagnostics."
    )(fn)
    return fn


def run_client(settings: Settings, fn: Callable[[AspenClient], Awaitable[Output]]) -> None:
    """Connect with the settings' ticket, timeout and request id, run `fn`, print its `Output`."""
    ticket = settings.resolve_ticket()
    if settings.verbose:
        click.echo(f"request id: {settings.request_id}", err=True)

    async def go() -> Output:
        async with AspenClient(
            ticket, timeout=settings.timeout_ms / 1000, request_id=settings.request_id
        ) as client:
            return await fn(client)

    emit(run_loop(go()), settings.as_json)


def command(
    group: click.Group, name: str, **attrs: Any
) -> Callable[[Callable[..., Awaitable[Output]]], click.Command]:
    """Register an async command: it receives a connected `AspenClient` first and returns an `Output`."""

    def wrap(fn: Callable[..., Awaitable[Output]]) -> click.Command:
        @functools.wraps(fn)
        def run(**kwargs: Any) -> None:
            settings = _merge(click.get_current_context(), kwargs)
            run_client(settings, lambda client: fn(client, **kwargs))

        return group.command(name, **attrs)(global_options(run))

    return wrap
