"""`aspen-cli lease …`. Every command exits 1 when the result is not a success.

`lease ttl` and `lease list` are linearizable reads unless `--stale`; the remaining time is computed
by the answering node's clock against the expiry the leader stored.
"""

from __future__ import annotations

import click

from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.client.client import AspenClient

LEASE_ID = click.IntRange(min=0, max=2**64 - 1)


@click.group("lease")
def lease_group() -> None:
    """Leases: TTL'd handles whose attached keys are deleted when they expire or are revoked."""


@command(lease_group, "grant")
@click.argument("ttl_secs", type=int)
@click.option("--id", "lease_id", type=LEASE_ID, help="Lease id to use (default: chosen by the cluster).")
async def grant(client: AspenClient, ttl_secs: int, lease_id: int | None) -> Output:
    """Grant a lease living TTL_SECS seconds unless kept alive."""
    res = await client.lease_grant(ttl_secs, lease_id=lease_id)
    doc = {
        "is_success": res.is_success,
        "lease_id": res.lease_id,
        "ttl_seconds": res.ttl_seconds,
        "error": res.error,
    }
    human = (
        f"Lease {res.lease_id} granted with TTL {res.ttl_seconds}s"
        if res.is_success
        else f"Lease grant failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(lease_group, "revoke")
@click.argument("lease_id", type=LEASE_ID)
async def revoke(client: AspenClient, lease_id: int) -> Output:
    """Revoke LEASE_ID, deleting every key attached to it."""
    res = await client.lease_revoke(lease_id)
    doc = {"is_success": res.is_success, "keys_deleted": res.keys_deleted, "error": res.error}
    human = (
        f"Lease revoked. {res.keys_deleted} key(s) deleted."
        if res.is_success
        else f"Lease revoke failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(lease_group, "keepalive")
@click.argument("lease_id", type=LEASE_ID)
async def keepalive(client: AspenClient, lease_id: int) -> Output:
    """Restart LEASE_ID's TTL from now."""
    res = await client.lease_keepalive(lease_id)
    doc = {
        "is_success": res.is_success,
        "lease_id": res.lease_id,
        "ttl_seconds": res.ttl_seconds,
        "error": res.error,
    }
    human = (
        f"Lease {res.lease_id} renewed. TTL: {res.ttl_seconds}s"
        if res.is_success
        else f"Lease keepalive failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(lease_group, "ttl")
@click.argument("lease_id", type=LEASE_ID)
@click.option("--keys", "include_keys", is_flag=True, help="Also list the attached keys.")
@click.option("--stale", is_flag=True, help="Read this node's local state (fast, possibly stale).")
async def ttl(client: AspenClient, lease_id: int, include_keys: bool, stale: bool) -> Output:
    """Show the granted and remaining TTL of LEASE_ID."""
    res = await client.lease_ttl(lease_id, include_keys=include_keys, stale=stale)
    doc = {
        "is_success": res.is_success,
        "lease_id": res.lease_id,
        "granted_ttl_seconds": res.granted_ttl_seconds,
        "remaining_ttl_seconds": res.remaining_ttl_seconds,
        "keys": res.keys,
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"Lease {lease_id}: {res.error}", ok=False)
    lines = [
        f"Lease {res.lease_id}",
        f"  Granted TTL: {res.granted_ttl_seconds}s",
        f"  Remaining: {res.remaining_ttl_seconds}s",
    ]
    if res.keys is not None:
        lines.append(f"  Keys ({len(res.keys)}):")
        lines += [f"    {key}" for key in res.keys]
    return Output(doc, "\n".join(lines))


@command(lease_group, "list")
@click.option("--stale", is_flag=True, help="Read this node's local state (fast, possibly stale).")
async def list_(client: AspenClient, stale: bool) -> Output:
    """List the unexpired leases."""
    res = await client.lease_list(stale=stale)
    leases = res.leases or []
    doc = {
        "is_success": res.is_success,
        "leases": [
            {
                "lease_id": lease.lease_id,
                "granted_ttl_seconds": lease.granted_ttl_seconds,
                "remaining_ttl_seconds": lease.remaining_ttl_seconds,
                "attached_keys": lease.attached_keys,
            }
            for lease in leases
        ],
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"Lease list failed: {res.error}", ok=False)
    if not leases:
        return Output(doc, "No active leases")
    header = f"{'LEASE ID':>20}  {'GRANTED':>10}  {'REMAINING':>10}  {'KEYS':>6}"
    rows = [
        f"{lease.lease_id:>20}  {lease.granted_ttl_seconds:>9}s  {lease.remaining_ttl_seconds:>9}s  "
        f"{lease.attached_keys:>6}"
        for lease in leases
    ]
    return Output(doc, "\n".join([header, *rows]))
