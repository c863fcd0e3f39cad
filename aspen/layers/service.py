"""Service registry: TTL'd service instances with fencing tokens. Each instance is one JSON record
in `__coord:service:<service>:<instance>` (both escaped, see `records.escape`); the registry's
token counter is `__coord:service-token`.

Invariants:
- Fencing tokens come from one registry-wide counter and strictly increase: every registration
  (new, or replacing an existing instance) gets a token greater than any handed out before, so a
  stale registrant can be told apart even after deregister and re-register.
- deregister, heartbeat, health and update must present the instance's current token; a mismatch
  changes nothing.
- An instance whose `deadline_ms` is not after the command's (or query's) `now_ms` is expired and
  treated as gone: invisible to discover/list/get, "not found" to heartbeat/health/update, and
  deleted by the next write that touches it. A heartbeat sets `deadline_ms = now + ttl_ms`.
- discover filters by health, tags (all given tags present) and version prefix, in instance-id
  order, at most `MAX_RESULTS`; at most `MAX_INSTANCES` records exist.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from aspen.kv.layer import KvReader, KvTxn, Rejected
from aspen.layers.framework import Layer, check_user_key
from aspen.layers.records import check_id, check_range, dump, escape, load, parse

PREFIX: Final = "__coord:service:"
TOKEN_KEY: Final = "__coord:service-token"
HEALTH: Final = ("healthy", "unhealthy", "unknown")
MAX_TTL_MS: Final = 86_400_000
MAX_TAGS: Final = 32
MAX_METADATA: Final = 32
MAX_RESULTS: Final = 1000
MAX_INSTANCES: Final = 10_000
NOT_FOUND: Final = "instance not found"


def instance_key(service: str, instance: str) -> str:
    return f"{PREFIX}{escape(service)}:{escape(instance)}"


def _check_names(service: str, instance: str) -> str | None:
    return (
        check_id("service name", service)
        or check_id("instance id", instance)
        or check_user_key(PREFIX, instance_key(service, instance)[len(PREFIX) :])
    )


def _check_tags(tags: tuple[str, ...]) -> str | None:
    if len(tags) > MAX_TAGS:
        return f"at most {MAX_TAGS} tags"
    return next((e for e in (check_id("tag", t, max_bytes=128) for t in tags) if e), None)


def _check_token(token: int) -> str | None:
    return check_range("fencing_token", token, 1, 2**64 - 1)


# -------------------------------------------------------------------------------------- operations --
@dataclass(frozen=True, slots=True)
class ServiceRegister:
    service_name: str
    instance_id: str
    address: str
    version: str
    tags: tuple[str, ...]
    weight: int
    ttl_ms: int
    custom_metadata: tuple[tuple[str, str], ...]

    def check(self) -> str | None:
        if len(self.custom_metadata) > MAX_METADATA:
            return f"at most {MAX_METADATA} metadata entries"
        return (
            _check_names(self.service_name, self.instance_id)
            or check_id("address", self.address, max_bytes=512)
            or (None if len(self.version.encode()) <= 128 else "version exceeds 128 bytes")
            or _check_tags(self.tags)
            or check_range("weight", self.weight, 0, 2**32 - 1)
            or check_range("ttl_ms", self.ttl_ms, 1, MAX_TTL_MS)
        )


@dataclass(frozen=True, slots=True)
class ServiceDeregister:
    service_name: str
    instance_id: str
    fencing_token: int

    def check(self) -> str | None:
        return _check_names(self.service_name, self.instance_id) or _check_token(self.fencing_token)


@dataclass(frozen=True, slots=True)
class ServiceHeartbeat:
    service_name: str
    instance_id: str
    fencing_token: int

    def check(self) -> str | None:
        return _check_names(self.service_name, self.instance_id) or _check_token(self.fencing_token)


@dataclass(frozen=True, slots=True)
class ServiceSetHealth:
    service_name: str
    instance_id: str
    fencing_token: int
    status: str

    def check(self) -> str | None:
        if self.status not in HEALTH:
            return f"health must be one of {', '.join(HEALTH)}"
        return _check_names(self.service_name, self.instance_id) or _check_token(self.fencing_token)


@dataclass(frozen=True, slots=True)
class ServiceUpdate:
    """Change what is given (None = keep): version, tags, weight."""

    service_name: str
    instance_id: str
    fencing_token: int
    version: str | None
    tags: tuple[str, ...] | None
    weight: int | None

    def check(self) -> str | None:
        return (
            _check_names(self.service_name, self.instance_id)
            or _check_token(self.fencing_token)
            or (None if self.tags is None else _check_tags(self.tags))
            or (None if self.weight is None else check_range("weight", self.weight, 0, 2**32 - 1))
            or (
                None
                if self.version is None or len(self.version.encode()) <= 128
                else "version exceeds 128 bytes"
            )
        )


ServiceOp = ServiceRegister | ServiceDeregister | ServiceHeartbeat | ServiceSetHealth | ServiceUpdate


# ----------------------------------------------------------------------------------------- results --
@dataclass(frozen=True, slots=True)
class Instance:
    service_name: str
    instance_id: str
    address: str
    version: str
    tags: tuple[str, ...]
    weight: int
    health: str
    custom_metadata: Mapping[str, str]
    registered_at_ms: int
    last_heartbeat_ms: int
    deadline_ms: int
    fencing_token: int


@dataclass(frozen=True, slots=True)
class ServiceResult:
    is_success: bool
    error: str | None = None
    fencing_token: int | None = None
    deadline_ms: int | None = None
    was_registered: bool | None = None
    was_found: bool = False
    instance: Instance | None = None
    instances: tuple[Instance, ...] = ()
    services: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------- records --
def _instance(key: str, record: dict[str, Any]) -> Instance:
    try:
        inst = Instance(
            service_name=record["service_name"],
            instance_id=record["instance_id"],
            address=record["address"],
            version=record["version"],
            tags=tuple(record["tags"]),
            weight=record["weight"],
            health=record["health"],
            custom_metadata=MappingProxyType(dict(sorted(record["metadata"].items()))),
            registered_at_ms=record["registered_at_ms"],
            last_heartbeat_ms=record["last_heartbeat_ms"],
            deadline_ms=record["deadline_ms"],
            fencing_token=record["fencing_token"],
        )
    except (KeyError, TypeError, AttributeError):
        inst = None
    ints = ("weight", "registered_at_ms", "last_heartbeat_ms", "deadline_ms", "fencing_token", "ttl_ms")
    strs = ("service_name", "instance_id", "address", "version", "health")
    if (
        inst is None
        or not all(type(record.get(k)) is int for k in ints)
        or not all(type(record.get(k)) is str for k in strs)
        or not isinstance(record["tags"], list)
        or not all(type(t) is str for t in inst.tags)
        or not all(type(k) is str and type(v) is str for k, v in inst.custom_metadata.items())
    ):
        raise Rejected(f"corrupted data in key '{key}': not a valid service instance")
    return inst


def _live(
    reader: KvReader, service: str, instance: str, now_ms: int
) -> tuple[dict[str, Any], Instance] | None:
    key = instance_key(service, instance)
    record = load(reader, key)
    if record is None:
        return None
    inst = _instance(key, record)
    return (record, inst) if inst.deadline_ms > now_ms else None


def _next_token(txn: KvTxn) -> int:
    raw = txn.get(TOKEN_KEY)
    current = 0
    if raw is not None:
        text = raw.decode("ascii", "replace")
        if not text.isdigit() or len(text) > 20:
            raise Rejected(f"corrupted data in key '{TOKEN_KEY}': not a valid u64")
        current = int(text)
    txn.put(TOKEN_KEY, str(current + 1).encode())
    return current + 1


def _owned(txn: KvTxn, service: str, instance: str, token: int, now_ms: int) -> dict[str, Any]:
    """The live record of the instance if `token` is its current token, else `Rejected`."""
    found = _live(txn, service, instance, now_ms)
    if found is None:
        raise Rejected(NOT_FOUND)
    record, inst = found
    if inst.fencing_token != token:
        raise Rejected(f"fencing token mismatch: instance has token {inst.fencing_token}, not {token}")
    return record


# ---------------------------------------------------------------------------------------- applying --
def _register(txn: KvTxn, op: ServiceRegister, now_ms: int) -> ServiceResult:
    key = instance_key(op.service_name, op.instance_id)
    if txn.get(key) is None and len(txn.scan(PREFIX, limit=MAX_INSTANCES)) >= MAX_INSTANCES:
        raise Rejected(f"registry has {MAX_INSTANCES} instances")
    token = _next_token(txn)
    record: dict[str, Any] = {
        "service_name": op.service_name,
        "instance_id": op.instance_id,
        "address": op.address,
        "version": op.version,
        "tags": list(op.tags),
        "weight": op.weight,
        "health": "healthy",
        "metadata": dict(op.custom_metadata),
        "registered_at_ms": now_ms,
        "last_heartbeat_ms": now_ms,
        "deadline_ms": now_ms + op.ttl_ms,
        "ttl_ms": op.ttl_ms,
        "fencing_token": token,
    }
    txn.put(key, dump(record))
    return ServiceResult(True, fencing_token=token, deadline_ms=record["deadline_ms"])


def _deregister(txn: KvTxn, op: ServiceDeregister, now_ms: int) -> ServiceResult:
    key = instance_key(op.service_name, op.instance_id)
    if _live(txn, op.service_name, op.instance_id, now_ms) is None:
        txn.delete(key)  # an expired instance is gone: drop its record
        return ServiceResult(True, was_registered=False)
    _owned(txn, op.service_name, op.instance_id, op.fencing_token, now_ms)
    txn.delete(key)
    return ServiceResult(True, was_registered=True)


def _modify(
    txn: KvTxn, op: ServiceHeartbeat | ServiceSetHealth | ServiceUpdate, now_ms: int
) -> ServiceResult:
    record = _owned(txn, op.service_name, op.instance_id, op.fencing_token, now_ms)
    if isinstance(op, ServiceHeartbeat):
        record |= {"last_heartbeat_ms": now_ms, "deadline_ms": now_ms + record["ttl_ms"]}
    elif isinstance(op, ServiceSetHealth):
        record["health"] = op.status
    else:
        if op.version is not None:
            record["version"] = op.version
        if op.tags is not None:
            record["tags"] = list(op.tags)
        if op.weight is not None:
            record["weight"] = op.weight
    txn.put(instance_key(op.service_name, op.instance_id), dump(record))
    return ServiceResult(True, deadline_ms=record["deadline_ms"])


def apply(txn: KvTxn, op: ServiceOp, now_ms: int) -> ServiceResult:
    if isinstance(op, ServiceRegister):
        return _register(txn, op, now_ms)
    if isinstance(op, ServiceDeregister):
        return _deregister(txn, op, now_ms)
    return _modify(txn, op, now_ms)


def rejected(message: str) -> ServiceResult:
    return ServiceResult(False, error=message)


# ----------------------------------------------------------------------------------------- queries --
def _instances(reader: KvReader, prefix: str, now_ms: int) -> list[Instance]:
    out = []
    for key, raw in reader.scan(prefix, limit=MAX_INSTANCES):
        inst = _instance(key, parse(key, raw))
        if inst.deadline_ms > now_ms:
            out.append(inst)
    return out


def discover(
    reader: KvReader,
    service: str,
    now_ms: int,
    *,
    healthy_only: bool = False,
    tags: Collection[str] = (),
    version_prefix: str | None = None,
    limit: int = 100,
) -> ServiceResult:
    error = check_id("service name", service) or check_range("limit", limit, 1, MAX_RESULTS)
    if error is not None:
        return ServiceResult(False, error=error)
    try:
        found = [
            i
            for i in _instances(reader, f"{PREFIX}{escape(service)}:", now_ms)
            if (not healthy_only or i.health == "healthy")
            and set(tags) <= set(i.tags)
            and (version_prefix is None or i.version.startswith(version_prefix))
        ]
    except Rejected as err:
        return ServiceResult(False, error=err.message)
    return ServiceResult(True, instances=tuple(found[:limit]))


def list_services(reader: KvReader, prefix: str, now_ms: int, limit: int = 100) -> ServiceResult:
    """Names of services with at least one live instance, starting with `prefix`, sorted."""
    error = check_range("limit", limit, 1, MAX_RESULTS)
    if error is not None:
        return ServiceResult(False, error=error)
    try:
        live = _instances(reader, PREFIX + escape(prefix), now_ms)
    except Rejected as err:
        return ServiceResult(False, error=err.message)
    names = sorted({i.service_name for i in live if i.service_name.startswith(prefix)})
    return ServiceResult(True, services=tuple(names[:limit]))


def get(reader: KvReader, service: str, instance: str, now_ms: int) -> ServiceResult:
    error = _check_names(service, instance)
    if error is not None:
        return ServiceResult(False, error=error)
    try:
        found = _live(reader, service, instance, now_ms)
    except Rejected as err:
        return ServiceResult(False, error=err.message)
    return ServiceResult(True, was_found=found is not None, instance=found[1] if found else None)


LAYER: Final[Layer[ServiceOp, ServiceResult]] = Layer(
    name="service",
    ops=(ServiceRegister, ServiceDeregister, ServiceHeartbeat, ServiceSetHealth, ServiceUpdate),
    apply=apply,
    rejected=rejected,
    prefixes=(PREFIX, TOKEN_KEY),
    # The declared reads (aspen.api.registry) by name, with the requests' field names.
    queries={
        "ServiceDiscover": lambda reader, now_ms, service_name, **filters: discover(
            reader, service_name, now_ms, **filters
        ),
        "ServiceList": lambda reader, now_ms, prefix, limit: list_services(reader, prefix, now_ms, limit),
        "ServiceGetInstance": lambda reader, now_ms, service_name, instance_id: get(
            reader, service_name, instance_id, now_ms
        ),
    },
)

__all__ = [
    "HEALTH",
    "LAYER",
    "PREFIX",
    "TOKEN_KEY",
    "Instance",
    "ServiceDeregister",
    "ServiceHeartbeat",
    "ServiceOp",
    "ServiceRegister",
    "ServiceResult",
    "ServiceSetHealth",
    "ServiceUpdate",
    "discover",
    "get",
    "instance_key",
    "list_services",
]
