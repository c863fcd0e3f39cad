"""Property test: the service registry against a model (the original's coordination-library semantics),
through the log codec and `KvStateMachine.apply` with explicit time: fencing tokens strictly
increase across the whole registry, only the current token may act on an instance, expired
instances are gone, discover filters by health, tags and version prefix."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, service
from aspen.layers.service import (
    ServiceDeregister,
    ServiceHeartbeat,
    ServiceOp,
    ServiceRegister,
    ServiceResult,
    ServiceSetHealth,
    ServiceUpdate,
)

SERVICES = ["api", "a:b"]
INSTANCES = ["i1", "i2"]


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


@dataclass(frozen=True)
class Rec:
    token: int
    deadline: int
    ttl: int
    health: str
    version: str
    tags: tuple[str, ...]
    weight: int


@dataclass(frozen=True)
class Discover:
    service: str
    healthy_only: bool
    tags: tuple[str, ...]
    version_prefix: str | None


svc, inst = st.sampled_from(SERVICES), st.sampled_from(INSTANCES)
tags = st.lists(st.sampled_from(["eu", "us", "gpu"]), max_size=2, unique=True).map(tuple)
token = st.integers(1, 8)
ops = st.one_of(
    st.builds(
        ServiceRegister,
        svc,
        inst,
        st.just("10.0.0.1:80"),
        st.sampled_from(["1.0", "1.1", "2.0"]),
        tags,
        st.integers(0, 5),
        st.sampled_from([1, 5, 20]),
        st.just(()),
    ),
    st.builds(ServiceDeregister, svc, inst, token),
    st.builds(ServiceHeartbeat, svc, inst, token),
    st.builds(ServiceSetHealth, svc, inst, token, st.sampled_from(["healthy", "unhealthy", "bogus"])),
    st.builds(
        ServiceUpdate,
        svc,
        inst,
        token,
        st.sampled_from([None, "3.0"]),
        st.none() | tags,
        st.none() | st.integers(0, 5),
    ),
    st.builds(Discover, svc, st.booleans(), tags, st.sampled_from([None, "1.", "2"])),
)


@settings(max_examples=300)
@given(st.lists(st.tuples(ops, st.integers(0, 6)), max_size=40))
def test_registry_matches_the_model(steps: list[tuple[ServiceOp | Discover, int]]) -> None:
    kv = KvStateMachine(layers=APPLIERS)
    model: dict[tuple[str, str], Rec] = {}
    last_token, now = 0, 0
    for index, (op, dt) in enumerate(steps, start=1):
        now += dt
        live = {k: r for k, r in model.items() if r.deadline > now}
        if isinstance(op, Discover):
            res: ServiceResult = service.discover(
                KvView(kv),
                op.service,
                now,
                healthy_only=op.healthy_only,
                tags=op.tags,
                version_prefix=op.version_prefix,
            )
            expected = sorted(
                i
                for (s, i), r in live.items()
                if s == op.service
                and (not op.healthy_only or r.health == "healthy")
                and set(op.tags) <= set(r.tags)
                and (op.version_prefix is None or r.version.startswith(op.version_prefix))
            )
            assert [i.instance_id for i in res.instances] == expected
            continue
        res = kv.apply(index, through_log(service.LAYER.command(op, now_ms=now)))
        key = (op.service_name, op.instance_id)
        current = live.get(key)
        if isinstance(op, ServiceRegister):
            assert res.is_success and res.fencing_token is not None and res.fencing_token > last_token
            last_token = res.fencing_token
            model[key] = Rec(
                last_token, now + op.ttl_ms, op.ttl_ms, "healthy", op.version, op.tags, op.weight
            )
        elif isinstance(op, ServiceSetHealth) and op.status == "bogus":
            assert not res.is_success and "health must be one of" in str(res.error)
        elif isinstance(op, ServiceDeregister) and current is None:
            assert (res.is_success, res.was_registered) == (True, False)
            model.pop(key, None)
        elif current is None:
            assert (res.is_success, res.error) == (False, "instance not found")
        elif current.token != op.fencing_token:
            assert not res.is_success and "fencing token mismatch" in str(res.error)
        else:
            assert res.is_success, res.error
            if isinstance(op, ServiceDeregister):
                del model[key]
            elif isinstance(op, ServiceHeartbeat):
                model[key] = replace(current, deadline=now + current.ttl)
            elif isinstance(op, ServiceSetHealth):
                model[key] = replace(current, health=op.status)
            elif isinstance(op, ServiceUpdate):
                model[key] = replace(
                    current,
                    version=op.version if op.version is not None else current.version,
                    tags=op.tags if op.tags is not None else current.tags,
                    weight=op.weight if op.weight is not None else current.weight,
                )
        for s in SERVICES:
            for i in INSTANCES:
                got = service.get(KvView(kv), s, i, now).instance
                rec = model.get((s, i))
                want = rec if rec is not None and rec.deadline > now else None
                assert (got is None) == (want is None)
                if got is not None and want is not None:
                    assert (
                        got.fencing_token,
                        got.deadline_ms,
                        got.health,
                        got.version,
                        got.tags,
                        got.weight,
                    ) == (
                        want.token,
                        want.deadline,
                        want.health,
                        want.version,
                        want.tags,
                        want.weight,
                    )
        listed = service.list_services(KvView(kv), "", now).services
        assert list(listed) == sorted({s for (s, _), r in model.items() if r.deadline > now})
