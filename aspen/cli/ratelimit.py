"""`aspen-cli ratelimit …` (reference §6.5): JSON `{"operation","key","is_success","tokens_remaining",
"retry_after_ms","error"}`; human `OK (N tokens remaining)` / `Rate limited. Retry after N ms`;
exit 1 when `is_success` is false. `--rate` must be a positive finite number: checked here, before
anything is sent (exit 1)."""

from __future__ import annotations

import click

from aspen.api import locks as w
from aspen.cli.context import command
from aspen.cli.output import U64, Output
from aspen.cli.waiting import waits
from aspen.client.client import AspenClient
from aspen.client.locks import check_rate


@click.group("ratelimit")
def ratelimit_group() -> None:
    """Token-bucket rate limiters (capacity and refill rate given with every request)."""


def rate_output(key: str, operation: str, res: w.RateLimiterResult) -> Output:
    doc = {
        "operation": operation,
        "key": key,
        "is_success": res.is_success,
        "tokens_remaining": res.tokens_remaining,
        "retry_after_ms": res.retry_after_ms,
        "error": res.error,
    }
    if res.is_success:
        human = f"OK ({res.tokens_remaining} tokens remaining)"
    elif res.retry_after_ms is not None:
        human = f"Rate limited. Retry after {res.retry_after_ms} ms"
    else:
        human = f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


def _rate(rate: float) -> float:
    try:
        return check_rate(rate)
    except ValueError as err:
        raise click.ClickException(f"--rate: {err}") from None


capacity = click.option("--capacity", type=U64, required=True, help="Bucket size in tokens.")
rate = click.option("--rate", type=float, required=True, help="Refill rate in tokens per second.")
tokens = click.option("--tokens", type=U64, default=1, show_default=True, help="Tokens to take.")


@command(ratelimit_group, "try-acquire")
@click.argument("key")
@capacity
@rate
@tokens
async def try_acquire(client: AspenClient, key: str, capacity: int, rate: float, tokens: int) -> Output:
    """Take --tokens from bucket KEY if they are there; fail at once otherwise."""
    res = await client.rate_limiter_try_acquire(key, capacity, _rate(rate), tokens)
    return rate_output(key, "try_acquire", res)


@waits(5000, "the tokens")
@command(ratelimit_group, "acquire")
@click.argument("key")
@capacity
@rate
@tokens
async def acquire(
    client: AspenClient, key: str, capacity: int, rate: float, tokens: int, wait_ms: int
) -> Output:
    """Take --tokens from bucket KEY, waiting up to --timeout ms for the bucket to refill."""
    res = await client.rate_limiter_acquire(key, capacity, _rate(rate), tokens, wait_ms)
    return rate_output(key, "acquire", res)


@command(ratelimit_group, "available")
@click.argument("key")
@capacity
@rate
async def available(client: AspenClient, key: str, capacity: int, rate: float) -> Output:
    """Print the whole tokens available in bucket KEY now."""
    return rate_output(key, "available", await client.rate_limiter_available(key, capacity, _rate(rate)))


@command(ratelimit_group, "reset")
@click.argument("key")
@capacity
@rate
async def reset(client: AspenClient, key: str, capacity: int, rate: float) -> Output:
    """Refill bucket KEY to --capacity."""
    return rate_output(key, "reset", await client.rate_limiter_reset(key, capacity, _rate(rate)))
