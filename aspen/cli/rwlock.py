"""`aspen-cli rwlock …` (reference §6.6): JSON `{"operation","name","is_success","mode",
"fencing_token","deadline_ms","reader_count","writer_holder","error"}`; exit 1 when `is_success` is
false. `--timeout` of `read`/`write` is the wait (the global RPC timeout goes before the group)."""

from __future__ import annotations

from typing import Any

import click

from aspen.cli.context import command
from aspen.cli.output import U64, Output
from aspen.cli.waiting import waits
from aspen.client.client import AspenClient


@click.group("rwlock")
def rwlock_group() -> None:
    """Read-write locks: many readers or one writer; waiting writers go first."""


def _human(operation: str, res: Any) -> str:
    if not res.is_success:
        return f"{operation} failed: {res.error}"
    if operation in ("read", "try_read"):
        return f"Read lock acquired (readers: {res.reader_count})"
    if operation in ("write", "try_write"):
        return f"Write lock acquired. Fencing token: {res.fencing_token}"
    if operation == "release_read":
        return "Read lock released."
    if operation == "release_write":
        return "Write lock released."
    if operation == "downgrade":
        return f"Downgraded to read lock (readers: {res.reader_count}). Fencing token: {res.fencing_token}"
    if res.mode == "read":
        return f"Read mode ({res.reader_count} readers)"
    if res.mode == "write":
        return f"Write mode (holder: {res.writer_holder})"
    return "Mode: free"


def rwlock_output(name: str, operation: str, res: Any) -> Output:
    doc = {
        "operation": operation,
        "name": name,
        "is_success": res.is_success,
        "mode": res.mode,
        "fencing_token": res.fencing_token,
        "deadline_ms": res.deadline_ms,
        "reader_count": res.reader_count,
        "writer_holder": res.writer_holder,
        "error": res.error,
    }
    return Output(doc, _human(operation, res), ok=res.is_success)


holder = click.option("--holder", "holder_id", required=True, help="Holder id.")
ttl = click.option("--ttl", "ttl_ms", type=U64, default=30000, show_default=True, help="Lifetime in ms.")
token = click.option("--fencing-token", "fencing_token", type=U64, required=True, help="Write token.")


@waits(5000, "the read lock")
@command(rwlock_group, "read")
@click.argument("name")
@holder
@ttl
async def read(client: AspenClient, name: str, holder_id: str, ttl_ms: int, wait_ms: int) -> Output:
    """Take a read lock on NAME, waiting while a writer holds or waits for it."""
    return rwlock_output(name, "read", await client.rwlock_read(name, holder_id, ttl_ms, wait_ms))


@command(rwlock_group, "try-read")
@click.argument("name")
@holder
@ttl
async def try_read(client: AspenClient, name: str, holder_id: str, ttl_ms: int) -> Output:
    """Take a read lock on NAME if no writer holds or waits for it."""
    return rwlock_output(name, "try_read", await client.rwlock_try_read(name, holder_id, ttl_ms))


@waits(5000, "the write lock")
@command(rwlock_group, "write")
@click.argument("name")
@holder
@ttl
async def write(client: AspenClient, name: str, holder_id: str, ttl_ms: int, wait_ms: int) -> Output:
    """Take the write lock on NAME, waiting (and holding off new readers) until it is free."""
    return rwlock_output(name, "write", await client.rwlock_write(name, holder_id, ttl_ms, wait_ms))


@command(rwlock_group, "try-write")
@click.argument("name")
@holder
@ttl
async def try_write(client: AspenClient, name: str, holder_id: str, ttl_ms: int) -> Output:
    """Take the write lock on NAME if it is free."""
    return rwlock_output(name, "try_write", await client.rwlock_try_write(name, holder_id, ttl_ms))


@command(rwlock_group, "release-read")
@click.argument("name")
@holder
async def release_read(client: AspenClient, name: str, holder_id: str) -> Output:
    """Release the read lock --holder has on NAME."""
    return rwlock_output(name, "release_read", await client.rwlock_release_read(name, holder_id))


@command(rwlock_group, "release-write")
@click.argument("name")
@holder
@token
async def release_write(client: AspenClient, name: str, holder_id: str, fencing_token: int) -> Output:
    """Release the write lock --holder has on NAME with --fencing-token."""
    res = await client.rwlock_release_write(name, holder_id, fencing_token)
    return rwlock_output(name, "release_write", res)


@command(rwlock_group, "downgrade")
@click.argument("name")
@holder
@token
@ttl
async def downgrade(
    client: AspenClient, name: str, holder_id: str, fencing_token: int, ttl_ms: int
) -> Output:
    """Turn the write lock on NAME into a read lock of the same holder; the token is kept."""
    res = await client.rwlock_downgrade(name, holder_id, fencing_token, ttl_ms)
    return rwlock_output(name, "downgrade", res)


@command(rwlock_group, "status")
@click.argument("name")
async def status(client: AspenClient, name: str) -> Output:
    """Print the mode of NAME: free, read (with the reader count) or write (with the holder)."""
    return rwlock_output(name, "status", await client.rwlock_status(name))
