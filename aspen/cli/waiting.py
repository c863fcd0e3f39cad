"""Commands whose own `--timeout` is how long to wait: lock acquire, rwlock read|write, ratelimit
acquire, semaphore acquire, barrier enter|leave.

Every leaf command also accepts the global `--timeout` (the per-request RPC budget). For these
commands the leaf's `--timeout` is the wait, as in the original Aspen, so the global one is dropped from
the leaf; `aspen-cli --timeout MS <group> <command>` (before the group) still sets the RPC budget,
and the client stretches each request's budget to cover the node's wait."""

from __future__ import annotations

from collections.abc import Callable

import click


def waits(default_ms: int, what: str) -> Callable[[click.Command], click.Command]:
    """Give `cmd` a `--timeout` option (passed as `wait_ms`) in place of the global one."""

    def decorate(cmd: click.Command) -> click.Command:
        wait = click.Option(
            ["--timeout", "wait_ms"],
            type=click.IntRange(min=0),
            default=default_ms,
            show_default=True,
            help=f"How long to wait for {what}, in ms.",
        )
        cmd.params = [p for p in cmd.params if p.name != "timeout_ms"] + [wait]
        return cmd

    return decorate


__all__ = ["waits"]
