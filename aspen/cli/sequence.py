"""`aspen-cli sequence …` (reference §6.5): JSON `{"key","operation","is_success","value","error"}`,
human output the ID; exit 1 when `is_success` is false (an exhausted sequence, a rejected count)."""

from __future__ import annotations

import click

from aspen.cli.context import command
from aspen.cli.counter import U64, counter_output
from aspen.cli.output import Output
from aspen.client.client import AspenClient


@click.group("sequence")
def sequence_group() -> None:
    """Unique, strictly increasing IDs: 1, 2, 3, …"""


@command(sequence_group, "next")
@click.argument("key")
async def next_(client: AspenClient, key: str) -> Output:
    """Take and print the next ID of sequence KEY."""
    return counter_output(key, "next", await client.sequence_next(key))


@command(sequence_group, "reserve")
@click.argument("key")
@click.argument("count", type=U64)
async def reserve(client: AspenClient, key: str, count: int) -> Output:
    """Reserve COUNT consecutive IDs; print the first (the range is first .. first+COUNT-1)."""
    return counter_output(key, "reserve", await client.sequence_reserve(key, count))


@command(sequence_group, "current")
@click.argument("key")
async def current(client: AspenClient, key: str) -> Output:
    """Print the ID the next `next` would return, without taking it."""
    return counter_output(key, "current", await client.sequence_current(key))
