"""Property test: locks and lock sets against a model of the original Aspen's locks, with the checks
we add (a TTL of 0 or above the maximum is refused, where the original crashed on 0), over random
operation sequences that go through the whole log path (encode → decode → KvStateMachine.apply)
with explicit, sometimes backwards, time.

Checked besides the model: fencing tokens handed out for a key strictly increase, across release
and expiry; a failure writes nothing; a lock set is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, lock
from aspen.layers.lock import (
    LockRelease,
    LockRenew,
    LockResult,
    LockSetRelease,
    LockSetRenew,
    LockSetResult,
    LockSetTryAcquire,
    LockTryAcquire,
)

MAX_TTL = 3_600_000
KEYS = ["a", "b", "c"]
HOLDERS = ["h1", "h2", "h3"]
key = st.sampled_from(KEYS)
holder = st.sampled_from(HOLDERS)
ttl = st.one_of(st.integers(1, 30), st.sampled_from([0, MAX_TTL, MAX_TTL + 1]))
token = st.integers(0, 6)
keyset = st.lists(key, min_size=0, max_size=4).map(tuple)

ops = st.one_of(
    st.builds(LockTryAcquire, key, holder, ttl),
    st.builds(LockRelease, key, holder, token),
    st.builds(LockRenew, key, holder, token, ttl),
    st.builds(LockSetTryAcquire, keyset, holder, ttl),
    keyset.flatmap(
        lambda ks: st.builds(LockSetRelease, st.just(ks), holder, st.tuples(*[token for _ in ks]))
    ),
    keyset.flatmap(
        lambda ks: st.builds(LockSetRenew, st.just(ks), holder, st.tuples(*[token for _ in ks]), ttl)
    ),
)


@dataclass
class Rec:
    holder: str
    token: int
    deadline: int  # 0 = released

    def free(self, now: int) -> bool:
        return self.deadline == 0 or now > self.deadline


class Model:
    def __init__(self) -> None:
        self.locks: dict[str, Rec] = {}

    def acquire(self, k: str, h: str, ttl_ms: int, now: int) -> tuple[bool, int | None]:
        rec = self.locks.get(k)
        if rec is not None and not rec.free(now):
            return (False, None)
        new = (rec.token if rec else 0) + 1
        self.locks[k] = Rec(h, new, now + ttl_ms)
        return (True, new)

    def release(self, k: str, h: str, t: int) -> tuple[bool, int | None]:
        rec = self.locks.get(k)
        if rec is None:
            return (True, None)
        if rec.deadline == 0 and rec.holder == "" and rec.token == t:
            return (True, t)
        if rec.holder != h or rec.token != t:
            return (False, None)
        self.locks[k] = Rec("", t, 0)
        return (True, t)

    def renew(self, k: str, h: str, t: int, ttl_ms: int, now: int) -> tuple[bool, int | None]:
        rec = self.locks.get(k)
        if rec is None or rec.holder != h or rec.token != t or rec.free(now):
            return (False, None)
        rec.deadline = now + ttl_ms
        return (True, t)

    def step(self, op: lock.LockOp, now: int) -> tuple[bool, object]:
        ttl_ms = getattr(op, "ttl_ms", 1)
        if not 1 <= ttl_ms <= MAX_TTL:
            return (False, None)
        if isinstance(op, LockTryAcquire):
            return self.acquire(op.key, op.holder_id, ttl_ms, now)
        if isinstance(op, LockRelease):
            return self.release(op.key, op.holder_id, op.fencing_token)
        if isinstance(op, LockRenew):
            return self.renew(op.key, op.holder_id, op.fencing_token, ttl_ms, now)
        if not op.keys or len(set(op.keys)) != len(op.keys):
            return (False, None)
        saved = {k: Rec(r.holder, r.token, r.deadline) for k, r in self.locks.items()}
        tokens = []
        for i, k in enumerate(op.keys):
            if isinstance(op, LockSetTryAcquire):
                ok, t = self.acquire(k, op.holder_id, ttl_ms, now)
            elif isinstance(op, LockSetRelease):
                ok, t = self.release(k, op.holder_id, op.fencing_tokens[i])
                t = op.fencing_tokens[i] if t is None else t
            else:
                ok, t = self.renew(k, op.holder_id, op.fencing_tokens[i], ttl_ms, now)
            if not ok:
                self.locks = saved  # all or nothing
                return (False, None)
            tokens.append(t)
        return (True, tuple(tokens))


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


@settings(max_examples=400)
@given(st.lists(st.tuples(ops, st.integers(-3, 12)), max_size=40))
def test_locks_match_the_model(steps: list[tuple[lock.LockOp, int]]) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    now = 1_000
    issued: dict[str, list[int]] = {k: [] for k in KEYS}
    for index, (op, dt) in enumerate(steps, start=1):
        now += dt  # mostly forward, sometimes back (a new leader's clock may lag)
        before = dict(kv.items(lock.PREFIX))
        res = kv.apply(index, through_log(lock.LAYER.command(op, now)))
        expected_ok, payload = model.step(op, now)
        assert res.is_success == expected_ok, (op, res)
        assert (res.error is None) == res.is_success
        if not res.is_success:
            assert dict(kv.items(lock.PREFIX)) == before, "a failure wrote something"
            continue
        if isinstance(res, LockSetResult):
            assert res.fencing_tokens == payload
            if isinstance(op, LockSetTryAcquire):
                for k, t in zip(op.keys, res.fencing_tokens, strict=True):
                    issued[k].append(t)
        else:
            assert isinstance(res, LockResult)
            assert res.fencing_token == payload
            if isinstance(op, LockTryAcquire):
                issued[op.key].append(res.fencing_token)
    for k, tokens in issued.items():
        assert tokens == sorted(set(tokens)), f"tokens of {k} not strictly increasing: {tokens}"
        rec = lock.read_record(KvView(kv), k)
        assert (rec.fencing_token if rec else 0) == (tokens[-1] if tokens else 0)


def test_an_expired_lock_goes_to_the_next_holder_with_the_next_token() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    run = lambda i, op, now: kv.apply(i, lock.LAYER.command(op, now))  # noqa: E731
    assert run(1, LockTryAcquire("k", "a", 100), 1_000).fencing_token == 1
    held = run(2, LockTryAcquire("k", "b", 100), 1_100)
    assert not held.is_success and held.error == "lock held by 'a' until 1100ms"
    assert run(3, LockTryAcquire("k", "b", 100), 1_101).fencing_token == 2
    stale = run(4, LockRelease("k", "a", 1), 1_102)
    assert stale.error == "lock held by 'b' with token 2, not 'a' with token 1"
    assert (
        run(5, LockRenew("k", "a", 1, 100), 1_103).error
        == "lock held by 'b' with token 2, not 'a' with token 1"
    )
    assert run(6, LockRelease("k", "b", 2), 1_104).is_success
    assert run(7, LockRelease("k", "b", 2), 1_105).is_success  # a retried release is harmless
    assert run(8, LockRenew("k", "b", 2, 100), 1_106).error == "lock released"
    assert run(9, LockTryAcquire("k", "c", 100), 1_107).fencing_token == 3
    assert run(10, LockRenew("k", "c", 3, 100), 1_300).error == "lock expired"
    assert (
        run(11, LockRenew("k", "x", 1, 100), 1_300).error
        == "lock held by 'c' with token 3, not 'x' with token 1"
    )


def test_a_blocked_lock_set_names_the_member_and_takes_nothing() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    assert kv.apply(1, lock.LAYER.command(LockTryAcquire("b", "other", 1_000), 0)).is_success
    before = dict(kv.items(lock.PREFIX))
    res = kv.apply(2, lock.LAYER.command(LockSetTryAcquire(("a", "b", "c"), "me", 1_000), 10))
    assert isinstance(res, LockSetResult) and not res.is_success
    assert (res.blocked_member, res.blocked_holder) == ("b", "other")
    assert res.error == "lock set blocked: b: lock held by 'other' until 1000ms"
    assert dict(kv.items(lock.PREFIX)) == before


def test_corrupt_records_are_reported_never_crash_the_machine() -> None:
    """A raw `kv set` can put anything under a layer's prefix; every layer op then fails cleanly."""
    from aspen.kv import Write
    from aspen.layers import ratelimit, rwlock

    bad_values = [b"garbage", b"[]", b"{}", b"[" * 100_000, b'{"holder_id": 1}', b"null"]
    bad_values.append(b'{"holder_id":"a","fencing_token":-1,"acquired_at_ms":0,"ttl_ms":1,"deadline_ms":5}')
    bad_values.append(b'{"tokens":-1,"last_update_ms":0}')
    ops = [
        (lock.LAYER, lock.PREFIX, LockTryAcquire("k", "a", 10)),
        (lock.LAYER, lock.PREFIX, LockRelease("k", "a", 1)),
        (lock.LAYER, lock.PREFIX, LockSetTryAcquire(("j", "k"), "a", 10)),
        (rwlock.LAYER, rwlock.PREFIX, rwlock.RwLockTryRead("k", "a", 10)),
        (rwlock.LAYER, rwlock.PREFIX, rwlock.RwLockTryWrite("k", "a", 10, 5)),
        (ratelimit.LAYER, ratelimit.PREFIX, ratelimit.RateLimiterTryAcquire("k", 1, 5, 1.0)),
    ]
    index = 0
    for value in bad_values:
        for layer, prefix, op in ops:
            kv = KvStateMachine(layers=APPLIERS)
            kv.apply(index := index + 1, Write(prefix + "k", value))
            res = kv.apply(index := index + 1, layer.command(op, 1_000))
            assert not res.is_success and "corrupted data in key" in (res.error or ""), (value[:20], op)
            assert kv.get_entry(prefix + "k").value == value  # type: ignore[union-attr]
    for value in bad_values:
        kv = KvStateMachine(layers=APPLIERS)
        kv.apply(1, Write(rwlock.PREFIX + "k", value))
        kv.apply(2, Write(ratelimit.PREFIX + "k", value))
        assert "corrupted" in (rwlock.status(KvView(kv), "k", 0).error or "")
        assert "corrupted" in (ratelimit.available(KvView(kv), "k", 5, 1.0, 0).error or "")
