"""The lock layer's pure queries for waiters: `free_at` says when a try-acquire can succeed by expiry
alone, `set_blocked` what a blocked lock-set try would answer; both agree with apply."""

from __future__ import annotations

from aspen.kv import KvStateMachine, KvView
from aspen.layers import lock
from aspen.layers.framework import Layer


def _machine() -> KvStateMachine:
    layer: Layer[lock.LockOp, lock.LockResult | lock.LockSetResult] = lock.LAYER
    return KvStateMachine(layers={layer.name: layer})


def test_free_at_is_now_when_free_and_after_the_deadline_when_held() -> None:
    kv = _machine()
    view = KvView(kv)
    assert lock.free_at(view, ["a"], 1_000) == 1_000
    kv.apply(1, lock.LAYER.command(lock.LockTryAcquire("a", "h", 500), 1_000))
    assert lock.free_at(view, ["a", "b"], 1_200) == 1_501
    # At that time apply agrees: the holder is expired and a try succeeds.
    res = kv.apply(2, lock.LAYER.command(lock.LockTryAcquire("a", "g", 10), 1_501))
    assert res.is_success


def test_set_blocked_names_the_first_live_holder_like_apply() -> None:
    kv = _machine()
    view = KvView(kv)
    assert lock.set_blocked(view, ["a", "b"], 1_000) is None
    kv.apply(1, lock.LAYER.command(lock.LockTryAcquire("b", "h", 500), 1_000))
    got = lock.set_blocked(view, ["a", "b"], 1_100)
    tried = kv.apply(2, lock.LAYER.command(lock.LockSetTryAcquire(("a", "b"), "g", 10), 1_100))
    assert got == tried and got is not None and got.blocked_member == "b"
