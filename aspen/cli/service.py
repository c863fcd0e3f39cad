"""`aspen-cli service …` (reference §6.8): register → `{"is_success","fencing_token","error"}`;
discover → `{"is_success","instances":[{"instance_id","address","version","health","weight"}],
"error"}`; list → `{"is_success","services","error"}`; get → `{"is_success","was_found","instance",
"error"}`; deregister, heartbeat, health, update → `{"operation","is_success","error"}`. Exit 1 when
`is_success` is false."""

from __future__ import annotations

import click

from aspen.api import registry as w
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.client.client import AspenClient

TOKEN = click.IntRange(min=1, max=2**64 - 1)
WEIGHT = click.IntRange(min=0, max=2**32 - 1)


@click.group("service")
def service_group() -> None:
    """Service registry: instances with a TTL, heartbeats, health, discovery."""


def _tags(raw: str | None) -> list[str] | None:
    return None if raw is None else [t.strip() for t in raw.split(",") if t.strip()]


def _op_output(operation: str, res: w.ServiceOpResult) -> Output:
    doc = {"operation": operation, "is_success": res.is_success, "error": res.error}
    return Output(doc, "OK" if res.is_success else f"{operation} failed: {res.error}", ok=res.is_success)


def _instance_doc(i: w.ServiceInstanceInfo) -> dict[str, object]:
    return {
        "instance_id": i.instance_id,
        "address": i.address,
        "version": i.version,
        "health": i.health,
        "weight": i.weight,
    }


@command(service_group, "register")
@click.argument("service")
@click.argument("instance")
@click.argument("address")
@click.option("--svc-version", default="1.0.0", show_default=True, help="Version of the instance.")
@click.option("--tags", default="", help="Comma-separated tags.")
@click.option("--weight", type=WEIGHT, default=100, show_default=True)
@click.option("--ttl", type=click.IntRange(min=1), default=30000, show_default=True, help="TTL in ms.")
async def register(
    client: AspenClient,
    service: str,
    instance: str,
    address: str,
    svc_version: str,
    tags: str,
    weight: int,
    ttl: int,
) -> Output:
    """Register INSTANCE of SERVICE at ADDRESS; prints its fencing token."""
    res = await client.service_register(
        service, instance, address, version=svc_version, tags=_tags(tags) or [], weight=weight, ttl_ms=ttl
    )
    doc = {"is_success": res.is_success, "fencing_token": res.fencing_token, "error": res.error}
    human = (
        f"Registered {service}/{instance}. Fencing token: {res.fencing_token}"
        if res.is_success
        else f"register failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(service_group, "deregister")
@click.argument("service")
@click.argument("instance")
@click.option("--fencing-token", type=TOKEN, required=True)
async def deregister(client: AspenClient, service: str, instance: str, fencing_token: int) -> Output:
    """Remove INSTANCE of SERVICE."""
    return _op_output("deregister", await client.service_deregister(service, instance, fencing_token))


@command(service_group, "discover")
@click.argument("service")
@click.option("--healthy-only", is_flag=True, help="Only instances whose health is healthy.")
@click.option("--tags", default=None, help="Comma-separated tags an instance must all have.")
@click.option("--version-prefix", default=None, help="Only versions starting with this.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
async def discover(
    client: AspenClient,
    service: str,
    healthy_only: bool,
    tags: str | None,
    version_prefix: str | None,
    limit: int,
) -> Output:
    """List the live instances of SERVICE."""
    res = await client.service_discover(
        service, healthy_only=healthy_only, tags=_tags(tags) or [], version_prefix=version_prefix, limit=limit
    )
    doc = {
        "is_success": res.is_success,
        "instances": [_instance_doc(i) for i in res.instances],
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"discover failed: {res.error}", ok=False)
    lines = [f"Found {len(res.instances)} instance(s)"] + [
        f"{i.instance_id}  {i.address}  v{i.version}  {i.health}  weight {i.weight}" for i in res.instances
    ]
    return Output(doc, "\n".join(lines) if res.instances else "No instances found")


@command(service_group, "list")
@click.argument("prefix", default="")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
async def list_(client: AspenClient, prefix: str, limit: int) -> Output:
    """List services (with at least one live instance) whose name starts with PREFIX."""
    res = await client.service_list(prefix, limit)
    doc = {"is_success": res.is_success, "services": res.services, "error": res.error}
    if not res.is_success:
        return Output(doc, f"list failed: {res.error}", ok=False)
    return Output(doc, "\n".join(res.services) if res.services else "No services found")


@command(service_group, "get")
@click.argument("service")
@click.argument("instance")
async def get(client: AspenClient, service: str, instance: str) -> Output:
    """Show INSTANCE of SERVICE."""
    res = await client.service_get(service, instance)
    inst = None if res.instance is None else res.instance.model_dump(exclude={"service_name"})
    doc = {"is_success": res.is_success, "was_found": res.was_found, "instance": inst, "error": res.error}
    if not res.is_success:
        return Output(doc, f"get failed: {res.error}", ok=False)
    if res.instance is None:
        return Output(doc, f"Instance {service}/{instance} not found")
    i = res.instance
    human = "\n".join(
        [
            f"Instance: {service}/{i.instance_id}",
            f"  Address: {i.address}",
            f"  Version: {i.version}",
            f"  Health: {i.health}",
            f"  Weight: {i.weight}",
            f"  Tags: {', '.join(i.tags)}",
            f"  Fencing token: {i.fencing_token}",
            f"  Deadline: {i.deadline_ms} ms",
        ]
    )
    return Output(doc, human)


@command(service_group, "heartbeat")
@click.argument("service")
@click.argument("instance")
@click.option("--fencing-token", type=TOKEN, required=True)
async def heartbeat(client: AspenClient, service: str, instance: str, fencing_token: int) -> Output:
    """Renew the TTL of INSTANCE of SERVICE."""
    return _op_output("heartbeat", await client.service_heartbeat(service, instance, fencing_token))


@command(service_group, "health")
@click.argument("service")
@click.argument("instance")
@click.option("--fencing-token", type=TOKEN, required=True)
@click.option("--status", type=click.Choice(["healthy", "unhealthy", "unknown"]), required=True)
async def health(client: AspenClient, service: str, instance: str, fencing_token: int, status: str) -> Output:
    """Set the health of INSTANCE of SERVICE."""
    return _op_output("health", await client.service_update_health(service, instance, fencing_token, status))


@command(service_group, "update")
@click.argument("service")
@click.argument("instance")
@click.option("--fencing-token", type=TOKEN, required=True)
@click.option("--svc-version", default=None, help="New version.")
@click.option("--tags", default=None, help="New comma-separated tags.")
@click.option("--weight", type=WEIGHT, default=None, help="New weight.")
async def update(
    client: AspenClient,
    service: str,
    instance: str,
    fencing_token: int,
    svc_version: str | None,
    tags: str | None,
    weight: int | None,
) -> Output:
    """Change the version, tags or weight of INSTANCE of SERVICE."""
    res = await client.service_update(
        service, instance, fencing_token, version=svc_version, tags=_tags(tags), weight=weight
    )
    return _op_output("update", res)
