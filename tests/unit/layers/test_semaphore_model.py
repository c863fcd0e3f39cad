"""Property test: semaphores against a model of the original Aspen's coordination library, driven
through the log codec and `KvStateMachine.apply` with explicit, possibly non-monotonic `now_ms`: the
capacity is fixed by the first acquirer, expired holders' permits come back, Σ live permits never
exceeds the capacity, re-acquiring is idempotent, release 0 = all."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, semaphore
from aspen.layers.semaphore import SemaphoreRelease, SemaphoreResult, SemaphoreTryAcquire

NAMES = ["s", "t"]
HOLDERS = ["a", "b", "c", "d"]


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


@dataclass(frozen=True)
class Status:
    name: str


ops = st.one_of(
    st.builds(
        SemaphoreTryAcquire,
        st.sampled_from(NAMES),
        st.sampled_from(HOLDERS),
        st.integers(0, 4),
        st.integers(0, 4),
        st.sampled_from([0, 5, 20, 100]),
    ),
    st.builds(SemaphoreRelease, st.sampled_from(NAMES), st.sampled_from(HOLDERS), st.integers(0, 3)),
    st.builds(Status, st.sampled_from(NAMES)),
)


class Model:
    def __init__(self) -> None:
        self.capacity: dict[str, int] = {}
        self.holders: dict[str, dict[str, tuple[int, int]]] = {}  # name -> holder -> (permits, deadline)

    def live(self, name: str, now: int) -> dict[str, tuple[int, int]]:
        return {h: v for h, v in self.holders.get(name, {}).items() if v[1] > now}

    def available(self, name: str, now: int) -> int:
        return self.capacity.get(name, 0) - sum(p for p, _ in self.live(name, now).values())

    def step(self, op: SemaphoreTryAcquire | SemaphoreRelease | Status, now: int) -> tuple[bool, int | None]:
        """(is_success, permits_acquired)."""
        if isinstance(op, Status):
            return (True, 0)
        if isinstance(op, SemaphoreRelease):
            if op.name not in self.capacity:
                return (True, 0)
            live = self.live(op.name, now)
            if op.holder_id in live:
                permits, deadline = live[op.holder_id]
                if op.permits == 0 or op.permits >= permits:
                    del live[op.holder_id]
                else:
                    live[op.holder_id] = (permits - op.permits, deadline)
            self.holders[op.name] = live
            return (True, 0)
        if op.permits < 1 or op.capacity_permits < 1 or op.ttl_ms < 1:
            return (False, None)
        capacity = self.capacity.get(op.name, op.capacity_permits)
        live = self.live(op.name, now)
        if op.holder_id in live:
            permits = live[op.holder_id][0]
            live[op.holder_id] = (permits, now + op.ttl_ms)
            self.capacity[op.name], self.holders[op.name] = capacity, live
            return (True, permits)
        if op.permits > capacity - sum(p for p, _ in live.values()):
            return (False, 0)
        live[op.holder_id] = (op.permits, now + op.ttl_ms)
        self.capacity[op.name], self.holders[op.name] = capacity, live
        return (True, op.permits)


@settings(max_examples=300)
@given(st.lists(st.tuples(ops, st.integers(0, 60)), max_size=40))
def test_semaphores_match_the_model(
    steps: list[tuple[SemaphoreTryAcquire | SemaphoreRelease | Status, int]],
) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    for index, (op, now) in enumerate(steps, start=1):
        expected = model.step(op, now)
        if isinstance(op, Status):
            res: SemaphoreResult = semaphore.status(KvView(kv), op.name, now)
        else:
            res = kv.apply(index, through_log(semaphore.LAYER.command(op, now_ms=now)))
        assert (res.is_success, res.permits_acquired) == expected, op
        if res.available is not None and op.name in model.capacity:
            assert res.available == model.available(op.name, now)
            assert res.capacity_permits == model.capacity[op.name]
            assert 0 <= res.available <= res.capacity_permits
        if isinstance(op, SemaphoreTryAcquire) and res.is_success is False and res.error is None:
            assert res.retry_after_ms is not None and res.retry_after_ms >= 1


def test_capacity_is_fixed_by_the_first_acquirer_and_expiry_returns_permits() -> None:
    kv = KvStateMachine(layers=APPLIERS)

    def run(op: SemaphoreTryAcquire | SemaphoreRelease, now: int) -> SemaphoreResult:
        res: SemaphoreResult = kv.apply(now, semaphore.LAYER.command(op, now_ms=now))
        return res

    assert run(SemaphoreTryAcquire("p", "a", 2, 3, 100), 1).available == 1
    late = run(SemaphoreTryAcquire("p", "b", 2, 10, 100), 2)
    assert (late.is_success, late.capacity_permits, late.retry_after_ms) == (False, 3, 99)
    # Holder a's deadline is 101: at 101 it is expired, its permits are free again.
    assert run(SemaphoreTryAcquire("p", "b", 2, 10, 100), 101).is_success
    too_many = run(SemaphoreTryAcquire("p", "c", 4, 3, 100), 102)
    assert too_many.error == "requested 4 permits exceed the capacity of 3"
    assert run(SemaphoreRelease("p", "b", 0), 103).available == 3
    assert semaphore.status(KvView(kv), "p", 104) == SemaphoreResult(True, 0, 3, 3)
    assert semaphore.status(KvView(kv), "never", 104) == SemaphoreResult(True, 0, 0, 0)
