"""Printers of `aspen-cli service …` (the commands are derived from the declarations in
aspen.api.registry): register → `{"is_success","fencing_token","error"}`;
discover → `{"is_success","instances":[{"instance_id","address","version","health","weight"}],
"error"}`; list → `{"is_success","services","error"}`; get → `{"is_success","was_found","instance",
"error"}`; deregister, heartbeat, health, update → `{"operation","is_success","error"}`. Exit 1 when
`is_success` is false."""

from __future__ import annotations

from typing import Any

from aspen.api import registry as w
from aspen.cli.operations import parser, printer
from aspen.cli.output import Output


@parser("tags")
def tags(text: Any) -> list[str]:
    """`--tags a,b`: comma-separated, blanks dropped (a default arrives as the list it is)."""
    return list(text) if isinstance(text, list) else [t.strip() for t in text.split(",") if t.strip()]


@printer("service")
def op_output(_request: object, operation: str, res: w.ServiceOpResult) -> Output:
    doc = {"operation": operation, "is_success": res.is_success, "error": res.error}
    return Output(doc, "OK" if res.is_success else f"{operation} failed: {res.error}", ok=res.is_success)


@printer("service-register")
def register_output(req: w.ServiceRegister, _operation: str, res: w.ServiceRegisterResult) -> Output:
    doc = {"is_success": res.is_success, "fencing_token": res.fencing_token, "error": res.error}
    human = (
        f"Registered {req.service_name}/{req.instance_id}. Fencing token: {res.fencing_token}"
        if res.is_success
        else f"register failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@printer("service-discover")
def discover_output(_request: object, _operation: str, res: w.ServiceDiscoverResult) -> Output:
    fields = ("instance_id", "address", "version", "health", "weight")
    doc = {
        "is_success": res.is_success,
        "instances": [{f: getattr(i, f) for f in fields} for i in res.instances],
        "error": res.error,
    }
    if not res.is_success:
        return Output(doc, f"discover failed: {res.error}", ok=False)
    lines = [f"Found {len(res.instances)} instance(s)"] + [
        f"{i.instance_id}  {i.address}  v{i.version}  {i.health}  weight {i.weight}" for i in res.instances
    ]
    return Output(doc, "\n".join(lines) if res.instances else "No instances found")


@printer("service-list")
def list_output(_request: object, _operation: str, res: w.ServiceListResult) -> Output:
    doc = {"is_success": res.is_success, "services": res.services, "error": res.error}
    if not res.is_success:
        return Output(doc, f"list failed: {res.error}", ok=False)
    return Output(doc, "\n".join(res.services) if res.services else "No services found")


@printer("service-get")
def get_output(req: w.ServiceGetInstance, _operation: str, res: w.ServiceGetInstanceResult) -> Output:
    i = res.instance
    inst = None if i is None else i.model_dump(exclude={"service_name"})
    doc = {"is_success": res.is_success, "was_found": res.was_found, "instance": inst, "error": res.error}
    if not res.is_success:
        return Output(doc, f"get failed: {res.error}", ok=False)
    if i is None:
        return Output(doc, f"Instance {req.service_name}/{req.instance_id} not found")
    human = "\n".join(
        [
            f"Instance: {req.service_name}/{i.instance_id}",
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
