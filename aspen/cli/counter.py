"""`aspen-cli counter …` (reference §6.5): JSON `{"key","operation","is_success","value","error"}`,
human output the value; exit 1 when `is_success` is false (a failed cas, a rejected input)."""

from __future__ import annotations

import click

from aspen.api import coordination as c
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.client.client import AspenClient

U64 = click.IntRange(min=0, max=2**64 - 1)
I64 = click.IntRange(min=-(2**63), max=2**63 - 1)


@click.group("counter")
def counter_group() -> None:
    """Atomic counters: unsigned (saturating at 0) and signed."""


def counter_output(
    key: str, operation: str, res: c.CounterResult | c.SignedCounterResult | c.SequenceResult
) -> Output:
    """The output of every counter and sequence command (same shape; shared by aspen.cli.sequence)."""
    doc = {
        "key": key,
        "operation": operation,
        "is_success": res.is_success,
        "value": res.value,
        "error": res.error,
    }
    human = str(res.value) if res.is_success else f"{operation} failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@command(counter_group, "get")
@click.argument("key")
async def get(client: AspenClient, key: str) -> Output:
    """Print the value of counter KEY (0 if it was never written)."""
    return counter_output(key, "get", await client.counter_get(key))


@command(counter_group, "incr")
@click.argument("key")
async def incr(client: AspenClient, key: str) -> Output:
    """Add 1 to KEY; print the new value."""
    return counter_output(key, "incr", await client.counter_incr(key))


@command(counter_group, "decr")
@click.argument("key")
async def decr(client: AspenClient, key: str) -> Output:
    """Subtract 1 from KEY (stays at 0); print the new value."""
    return counter_output(key, "decr", await client.counter_decr(key))


@command(counter_group, "add")
@click.argument("key")
@click.argument("amount", type=U64)
async def add(client: AspenClient, key: str, amount: int) -> Output:
    """Add AMOUNT to KEY (saturating at 2^64-1); print the new value."""
    return counter_output(key, "add", await client.counter_add(key, amount))


@command(counter_group, "sub")
@click.argument("key")
@click.argument("amount", type=U64)
async def sub(client: AspenClient, key: str, amount: int) -> Output:
    """Subtract AMOUNT from KEY (saturating at 0); print the new value."""
    return counter_output(key, "sub", await client.counter_sub(key, amount))


@command(counter_group, "set")
@click.argument("key")
@click.argument("value", type=U64)
async def set_(client: AspenClient, key: str, value: int) -> Output:
    """Set KEY to VALUE."""
    return counter_output(key, "set", await client.counter_set(key, value))


@command(counter_group, "cas")
@click.argument("key")
@click.option("--expected", type=U64, required=True, help="Value KEY must hold (0 if never written).")
@click.option("--new-value", type=U64, required=True, help="Value to set.")
async def cas(client: AspenClient, key: str, expected: int, new_value: int) -> Output:
    """Compare-and-set KEY; on a mismatch print the error (JSON `value` = actual value) and exit 1."""
    return counter_output(key, "cas", await client.counter_cas(key, expected, new_value))


@command(counter_group, "signed-get")
@click.argument("key")
async def signed_get(client: AspenClient, key: str) -> Output:
    """Print the value of KEY read as a signed counter."""
    return counter_output(key, "signed_get", await client.signed_counter_get(key))


# ignore_unknown_options: a negative AMOUNT ("-5") is an argument, not an unknown option.
@command(counter_group, "signed-add", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("amount", type=I64)
async def signed_add(client: AspenClient, key: str, amount: int) -> Output:
    """Add AMOUNT (may be negative) to KEY as a signed counter."""
    return counter_output(key, "signed_add", await client.signed_counter_add(key, amount))
