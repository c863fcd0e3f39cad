"""The linearizability checker on hand-made and generated histories (pure, fast: no processes)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from linearizability import MISSING, CasResult, Kind, Op, Status, check, check_register

pytestmark = pytest.mark.fault


def r(p: int, t0: float, t1: float | None, out: object, *, key: str = "k", st: Status = Status.OK) -> Op:
    return Op(p, Kind.READ, key, None, t0, t1, st, out)


def w(p: int, t0: float, t1: float | None, val: object, *, key: str = "k", st: Status = Status.OK) -> Op:
    return Op(p, Kind.WRITE, key, val, t0, t1, st)


def cas(
    p: int,
    t0: float,
    t1: float | None,
    exp: object,
    new: object,
    res: CasResult | None,
    *,
    st: Status = Status.OK,
) -> Op:
    return Op(p, Kind.CAS, "k", (exp, new), t0, t1, st, res)


def legal(*ops: Op) -> bool:
    return check(list(ops)).ok


# --------------------------------------------------------------------------- hand-made, legal --
def test_empty_history_and_read_of_initial_absent_value_are_legal() -> None:
    assert legal()
    assert legal(r(1, 0, 1, None))


def test_sequential_write_then_read_is_legal() -> None:
    assert legal(w(1, 0, 1, "a"), r(2, 2, 3, "a"))


def test_read_concurrent_with_a_write_may_see_old_or_new_value() -> None:
    assert legal(w(1, 0, 1, "a"), w(1, 2, 5, "b"), r(2, 3, 4, "a"))
    assert legal(w(1, 0, 1, "a"), w(1, 2, 5, "b"), r(2, 3, 4, "b"))


def test_concurrent_reads_may_disagree_in_write_order_consistent_way() -> None:
    # Both reads overlap the write; the first sees the new value, the second the old one. Legal
    # only because the reads overlap each other too (no real-time order between them).
    assert legal(w(1, 0, 10, "b"), r(2, 1, 5, "b"), r(3, 2, 6, None))


def test_cas_swaps_only_from_the_expected_value() -> None:
    assert legal(w(1, 0, 1, "a"), cas(2, 2, 3, "a", "b", CasResult(True)), r(3, 4, 5, "b"))
    assert legal(w(1, 0, 1, "a"), cas(2, 2, 3, "x", "b", CasResult(False, "a")), r(3, 4, 5, "a"))
    assert legal(cas(2, 0, 1, None, "b", CasResult(True)), r(3, 2, 3, "b"))


def test_unknown_write_may_take_effect_late_or_never() -> None:
    # Timed out at t=1, yet a read long after sees it: the write may linearize any time after invoke.
    assert legal(w(1, 0, None, "a", st=Status.UNKNOWN), r(2, 5, 6, None), r(2, 10, 11, "a"))
    # ...or never.
    assert legal(w(1, 0, None, "a", st=Status.UNKNOWN), r(2, 5, 6, None))


def test_unknown_cas_applies_only_if_its_condition_held() -> None:
    hist = [w(1, 0, 1, "a"), cas(2, 2, None, "a", "b", None, st=Status.UNKNOWN), r(3, 5, 6, "b")]
    assert legal(*hist)
    hist[1] = cas(2, 2, None, "z", "b", None, st=Status.UNKNOWN)
    assert not legal(*hist)


def test_definitely_failed_write_and_failed_read_are_ignored() -> None:
    assert legal(w(1, 0, 1, "a", st=Status.FAIL), r(2, 2, 3, None), r(3, 2, 3, "junk", st=Status.FAIL))


def test_keys_are_independent_registers() -> None:
    assert legal(w(1, 0, 1, "a", key="x"), w(1, 0, 1, "b", key="y"), r(2, 2, 3, "a", key="x"))


# ------------------------------------------------------------------------- hand-made, illegal --
def test_stale_read_after_a_completed_write_is_rejected() -> None:
    res = check([w(1, 0, 1, "a"), w(1, 2, 3, "b"), r(2, 4, 5, "a")])
    assert not res.ok
    assert "not linearizable" in res.summary()


def test_read_of_a_value_never_written_is_rejected() -> None:
    assert not legal(w(1, 0, 1, "a"), r(2, 2, 3, "zzz"))


def test_reads_going_back_in_time_are_rejected() -> None:
    # Write concurrent with both reads, but the reads are sequential: new then old is impossible.
    assert not legal(w(1, 0, 10, "b"), r(2, 1, 2, "b"), r(3, 3, 4, None))


def test_cas_that_succeeded_against_the_wrong_value_is_rejected() -> None:
    assert not legal(w(1, 0, 1, "a"), cas(2, 2, 3, "x", "b", CasResult(True)))


def test_cas_reporting_a_wrong_actual_value_is_rejected() -> None:
    assert not legal(w(1, 0, 1, "a"), cas(2, 2, 3, "x", "b", CasResult(False, "q")))
    # Failing although the expected value was in place is wrong too.
    assert not legal(w(1, 0, 1, "a"), cas(2, 2, 3, "a", "b", CasResult(False, MISSING)))


def test_lost_acknowledged_write_is_rejected() -> None:
    assert not legal(w(1, 0, 1, "a"), r(2, 2, 3, None))


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    assert not legal(r(2, 0, 1, "a"), w(1, 2, None, "a", st=Status.UNKNOWN))


def test_failure_is_reported_per_key() -> None:
    res = check([w(1, 0, 1, "a", key="good"), r(1, 2, 3, "a", key="good"), r(1, 0, 1, "x", key="bad")])
    assert not res.ok and [k.key for k in res.failures] == ["bad"]


# -------------------------------------------------------------------------------- generated --
def simulate(seed: int, n_ops: int = 120, processes: int = 5) -> list[Op]:
    """A real register driven by concurrent processes: each op takes effect at a random instant
    inside its interval, so the history is linearizable by construction. Some writes/CAS time out
    (unknown) whether or not they took effect, and some writes definitely fail (no effect)."""
    rng = random.Random(seed)
    clock = [0.0] * processes
    planned: list[tuple[float, Op, bool]] = []  # (linearization point, op, takes effect)
    for i in range(n_ops):
        p = rng.randrange(processes)
        start = clock[p] + rng.uniform(0.0, 1.0)
        end = start + rng.uniform(0.01, 3.0)
        clock[p] = end
        point = rng.uniform(start, end)
        kind = rng.choice([Kind.READ, Kind.READ, Kind.WRITE, Kind.CAS])
        status = Status.OK
        if kind != Kind.READ and rng.random() < 0.15:
            status = rng.choice([Status.UNKNOWN, Status.FAIL])
        value: object = None
        if kind == Kind.WRITE:
            value = f"v{i}"
        elif kind == Kind.CAS:
            value = (rng.choice([None, f"v{rng.randrange(max(1, i))}"]), f"v{i}")
        op = Op(p, kind, "k", value, start, end, status)
        effect = status == Status.OK or (status == Status.UNKNOWN and rng.random() < 0.5)
        planned.append((point, op, effect))
    state: object = None
    ops: list[Op] = []
    for _, op, effect in sorted(planned, key=lambda x: x[0]):
        if op.kind == Kind.READ:
            op.output = state
        elif op.kind == Kind.WRITE:
            if effect:
                state = op.value
        else:
            exp, new = op.value
            swapped = state == exp
            op.output = CasResult(swapped, None if swapped else state)
            if swapped and effect:
                state = new
        if op.status == Status.UNKNOWN:
            op.output = None
            op.complete = None
        ops.append(op)
    return ops


@pytest.mark.parametrize("seed", range(40))
def test_generated_concurrent_histories_are_linearizable(seed: int) -> None:
    res = check(simulate(seed))
    assert res.ok, res.summary()


@pytest.mark.parametrize("seed", range(40))
def test_corrupting_one_read_of_a_generated_history_is_detected(seed: int) -> None:
    ops = simulate(seed)
    rng = random.Random(1000 + seed)
    reads = [i for i, o in enumerate(ops) if o.kind == Kind.READ and o.status == Status.OK]
    victim = rng.choice(reads)
    ops[victim] = replace(ops[victim], output="never-written")
    assert not check(ops).ok


def test_a_long_history_with_many_concurrent_processes_is_checked_quickly() -> None:
    res = check_register("k", simulate(7, n_ops=2000, processes=8))
    assert res.ok and res.ops > 1000
