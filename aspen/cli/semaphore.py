"""`aspen-cli semaphore …` (reference §6.6): JSON `{"operation","name","is_success",
"permits_acquired","available","max_permits","capacity_permits","retry_after_ms","error"}` (the
capacity under both names, [Py] A10); exit 1 when `is_success` is false."""

from __future__ import annotations

import click

from aspen.api import semaphore as w
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.cli.waiting import waits
from aspen.client.client import AspenClient

U32 = click.IntRange(min=0, max=2**32 - 1)
POSITIVE = click.IntRange(min=1, max=2**32 - 1)


@click.group("semaphore")
def semaphore_group() -> None:
    """Counting semaphores: a capacity of permits shared by holders with a TTL."""


def semaphore_output(name: str, operation: str, res: w.SemaphoreResult) -> Output:
    doc = {
        "operation": operation,
        "name": name,
        "is_success": res.is_success,
        "permits_acquired": res.permits_acquired,
        "available": res.available,
        "max_permits": res.capacity_permits,
        "capacity_permits": res.capacity_permits,
        "retry_after_ms": res.retry_after_ms,
        "error": res.error,
    }
    ratio = f"{res.available}/{res.capacity_permits}"
    if res.is_success:
        human = {
            "acquire": f"Acquired {res.permits_acquired} permits ({ratio} available)",
            "try_acquire": f"Acquired {res.permits_acquired} permits ({ratio} available)",
            "release": f"Released ({ratio} available)",
        }.get(operation, f"Available: {ratio}")
    elif res.error is None:
        human = f"No permits available. Retry after {res.retry_after_ms} ms"
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@waits(5000, "the permits")
@command(semaphore_group, "acquire")
@click.argument("name")
@click.option("--holder", required=True, help="Holder id.")
@click.option("--capacity", type=POSITIVE, required=True, help="Total permits (fixed by the first acquirer).")
@click.option("--permits", type=POSITIVE, default=1, show_default=True)
@click.option("--ttl", type=POSITIVE, default=30000, show_default=True, help="Holder TTL in ms.")
async def acquire(
    client: AspenClient, name: str, holder: str, capacity: int, permits: int, ttl: int, wait_ms: int
) -> Output:
    """Acquire PERMITS of semaphore NAME, waiting up to --timeout ms."""
    res = await client.semaphore_acquire(
        name, holder, capacity=capacity, permits=permits, ttl_ms=ttl, timeout_ms=wait_ms
    )
    return semaphore_output(name, "acquire", res)


@command(semaphore_group, "try-acquire")
@click.argument("name")
@click.option("--holder", required=True, help="Holder id.")
@click.option("--capacity", type=POSITIVE, required=True, help="Total permits (fixed by the first acquirer).")
@click.option("--permits", type=POSITIVE, default=1, show_default=True)
@click.option("--ttl", type=POSITIVE, default=30000, show_default=True, help="Holder TTL in ms.")
async def try_acquire(
    client: AspenClient, name: str, holder: str, capacity: int, permits: int, ttl: int
) -> Output:
    """Acquire PERMITS of semaphore NAME if available now; exit 1 if not."""
    res = await client.semaphore_try_acquire(name, holder, capacity=capacity, permits=permits, ttl_ms=ttl)
    return semaphore_output(name, "try_acquire", res)


@command(semaphore_group, "release")
@click.argument("name")
@click.option("--holder", required=True, help="Holder id.")
@click.option("--permits", type=U32, default=0, show_default=True, help="Permits to release (0 = all).")
async def release(client: AspenClient, name: str, holder: str, permits: int) -> Output:
    """Release the holder's permits of semaphore NAME."""
    return semaphore_output(name, "release", await client.semaphore_release(name, holder, permits))


@command(semaphore_group, "status")
@click.argument("name")
async def status(client: AspenClient, name: str) -> Output:
    """Print the available and total permits of semaphore NAME."""
    return semaphore_output(name, "status", await client.semaphore_status(name))
