"""`aspen-cli barrier …` (reference §6.6): JSON `{"operation","name","is_success","current_count",
"required_count","phase","error"}`, human `OK (c/r participants, phase: p)`; exit 1 when
`is_success` is false (a timeout, a rejected input)."""

from __future__ import annotations

import click

from aspen.api import barrier as w
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.cli.waiting import waits
from aspen.client.client import AspenClient


@click.group("barrier")
def barrier_group() -> None:
    """Barriers: wait until N participants arrive, then until all have left."""


def barrier_output(name: str, operation: str, res: w.BarrierResult) -> Output:
    doc = {
        "operation": operation,
        "name": name,
        "is_success": res.is_success,
        "current_count": res.current_count,
        "required_count": res.required_count,
        "phase": res.phase,
        "error": res.error,
    }
    human = (
        f"OK ({res.current_count}/{res.required_count} participants, phase: {res.phase})"
        if res.is_success
        else f"{operation} failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@waits(30000, "the other participants")
@command(barrier_group, "enter")
@click.argument("name")
@click.option("--participant", required=True, help="Participant id.")
@click.option(
    "--count", type=click.IntRange(min=1), required=True, help="Participants the barrier waits for."
)
async def enter(client: AspenClient, name: str, participant: str, count: int, wait_ms: int) -> Output:
    """Enter barrier NAME and wait until --count participants are in."""
    return barrier_output(
        name, "enter", await client.barrier_enter(name, participant, count, timeout_ms=wait_ms)
    )


@waits(30000, "the other participants")
@command(barrier_group, "leave")
@click.argument("name")
@click.option("--participant", required=True, help="Participant id.")
async def leave(client: AspenClient, name: str, participant: str, wait_ms: int) -> Output:
    """Leave barrier NAME and wait until every participant has left."""
    return barrier_output(name, "leave", await client.barrier_leave(name, participant, timeout_ms=wait_ms))


@command(barrier_group, "status")
@click.argument("name")
async def status(client: AspenClient, name: str) -> Output:
    """Show the participants count, required count and phase of barrier NAME."""
    return barrier_output(name, "status", await client.barrier_status(name))
