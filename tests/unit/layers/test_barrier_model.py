"""Property test: barriers against a model (reference §7.7, library semantics), through the log
codec and `KvStateMachine.apply`: rounds waiting → ready → leaving → completed, idempotent enter and
leave, no entry while leaving, the first enter of a round fixes the required count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, barrier
from aspen.layers.barrier import BarrierEnter, BarrierLeave, BarrierResult

PARTICIPANTS = ["a", "b", "c"]


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


class Model:
    def __init__(self) -> None:
        self.round, self.required, self.phase = 0, 0, "waiting"
        self.members: set[str] = set()
        self.exists = False

    def enter(self, p: str, count: int) -> tuple[bool, str]:
        if count < 1:
            return (False, "waiting")
        if not self.exists or self.phase == "completed":
            self.exists, self.round, self.required, self.members = True, self.round + 1, count, {p}
            self.phase = "ready" if count <= 1 else "waiting"
        elif self.phase != "leaving" and p not in self.members:
            self.members.add(p)
            if len(self.members) >= self.required:
                self.phase = "ready"
        return (True, self.phase)

    def leave(self, p: str) -> tuple[bool, str]:
        if not self.exists:
            return (True, "completed")
        if p not in self.members:
            return (self.phase not in ("waiting", "ready"), self.phase)
        self.members.remove(p)
        self.phase = "leaving" if self.members else "completed"
        return (True, self.phase)


ops = st.one_of(
    st.builds(BarrierEnter, st.just("b"), st.sampled_from(PARTICIPANTS), st.integers(0, 3)),
    st.builds(BarrierLeave, st.just("b"), st.sampled_from(PARTICIPANTS)),
)


@settings(max_examples=300)
@given(st.lists(ops, max_size=40))
def test_barrier_matches_the_model(steps: list[BarrierEnter | BarrierLeave]) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    for index, op in enumerate(steps, start=1):
        res: BarrierResult = kv.apply(index, through_log(barrier.LAYER.command(op, now_ms=index)))
        expected = (
            model.enter(op.participant_id, op.required_count)
            if isinstance(op, BarrierEnter)
            else model.leave(op.participant_id)
        )
        assert res.is_success == expected[0], (op, res)
        if res.is_success:
            assert res.phase == expected[1]
        st_ = barrier.status(KvView(kv), "b")
        if model.exists:
            assert (st_.round, st_.phase, st_.current_count, st_.required_count) == (
                model.round,
                model.phase,
                len(model.members),
                model.required,
            )
            assert (st_.phase == "ready") == (model.phase == "ready")
        else:
            assert (st_.current_count, st_.required_count, st_.phase) == (0, 0, "waiting")


def test_a_three_party_round() -> None:
    kv = KvStateMachine(layers=APPLIERS)

    def run(op: BarrierEnter | BarrierLeave) -> BarrierResult:
        res: BarrierResult = kv.apply(1, barrier.LAYER.command(op, now_ms=1))
        return res

    assert run(BarrierEnter("r", "a", 3)).phase == "waiting"
    assert run(BarrierEnter("r", "b", 3)).current_count == 2
    assert run(BarrierEnter("r", "c", 3)).phase == "ready"
    assert run(BarrierLeave("r", "a")).phase == "leaving"
    late = run(BarrierEnter("r", "d", 3))
    assert (late.is_member, late.phase) == (False, "leaving")
    assert run(BarrierLeave("r", "x")).is_success  # not a member while leaving: no-op
    run(BarrierLeave("r", "b"))
    done = run(BarrierLeave("r", "c"))
    assert (done.phase, done.current_count, done.round) == ("completed", 0, 1)
    assert run(BarrierEnter("r", "d", 2)).round == 2
    assert run(BarrierLeave("r", "x")).error == "participant 'x' is not in barrier 'r'"
