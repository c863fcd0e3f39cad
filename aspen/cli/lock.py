"""`aspen-cli lock …` (reference §6.5): JSON `{"operation","key","is_success","fencing_token",
"holder_id","deadline_ms","error"}`; exit 1 when `is_success` is false (held by someone else, a
wrong holder or token, a timed-out wait, a rejected TTL). `--timeout` of `acquire` is the wait; the
RPC timeout is the global one, given before the group (`aspen-cli --timeout 60000 lock acquire …`)."""

from __future__ import annotations

import click

from aspen.api import locks as w
from aspen.cli.context import command
from aspen.cli.output import U64, Output
from aspen.cli.waiting import waits
from aspen.client.client import AspenClient

_HUMAN_OK = {
    "acquire": "Lock acquired. Fencing token: {token}",
    "try_acquire": "Lock acquired. Fencing token: {token}",
    "release": "Lock released.",
    "renew": "Lock renewed. New deadline: {deadline} ms",
}


@click.group("lock")
def lock_group() -> None:
    """Distributed locks with fencing tokens (strictly increasing per key)."""


def lock_output(key: str, operation: str, res: w.LockResult) -> Output:
    doc = {
        "operation": operation,
        "key": key,
        "is_success": res.is_success,
        "fencing_token": res.fencing_token,
        "holder_id": res.holder_id,
        "deadline_ms": res.deadline_ms,
        "error": res.error,
    }
    if res.is_success:
        human = _HUMAN_OK[operation].format(token=res.fencing_token, deadline=res.deadline_ms)
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


holder = click.option("--holder", "holder_id", required=True, help="Holder id (who takes the lock).")
ttl = click.option("--ttl", "ttl_ms", type=U64, required=True, help="Lock lifetime in ms.")
token = click.option("--fencing-token", "fencing_token", type=U64, required=True, help="Token from acquire.")


@waits(5000, "the lock")
@command(lock_group, "acquire")
@click.argument("key")
@holder
@ttl
async def acquire(client: AspenClient, key: str, holder_id: str, ttl_ms: int, wait_ms: int) -> Output:
    """Take lock KEY, waiting up to --timeout ms while another holder has it."""
    return lock_output(key, "acquire", await client.lock_acquire(key, holder_id, ttl_ms, wait_ms))


@command(lock_group, "try-acquire")
@click.argument("key")
@holder
@ttl
async def try_acquire(client: AspenClient, key: str, holder_id: str, ttl_ms: int) -> Output:
    """Take lock KEY if it is free; fail at once otherwise."""
    return lock_output(key, "try_acquire", await client.lock_try_acquire(key, holder_id, ttl_ms))


@command(lock_group, "release")
@click.argument("key")
@holder
@token
async def release(client: AspenClient, key: str, holder_id: str, fencing_token: int) -> Output:
    """Release lock KEY held by --holder with --fencing-token."""
    return lock_output(key, "release", await client.lock_release(key, holder_id, fencing_token))


@command(lock_group, "renew")
@click.argument("key")
@holder
@token
@ttl
async def renew(client: AspenClient, key: str, holder_id: str, fencing_token: int, ttl_ms: int) -> Output:
    """Extend lock KEY to --ttl ms from now; the fencing token stays the same."""
    return lock_output(key, "renew", await client.lock_renew(key, holder_id, fencing_token, ttl_ms))
