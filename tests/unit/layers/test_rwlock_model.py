"""Property test: read-write locks against a model written from reference §7.6 (library semantics,
writer preference, [Py] expiring pending-writer registrations), through the log path with explicit
time.

Checked besides the model: never a live writer together with live readers, writer tokens strictly
increase per name, downgrade keeps the token, a failure writes nothing (except a waiting writer's
registration, the one documented exception).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, rwlock
from aspen.layers.rwlock import (
    RwLockDowngrade,
    RwLockOp,
    RwLockReleaseRead,
    RwLockReleaseWrite,
    RwLockTryRead,
    RwLockTryWrite,
)

NAMES = ["x", "y"]
HOLDERS = ["h1", "h2", "h3", "h4"]
name = st.sampled_from(NAMES)
holder = st.sampled_from(HOLDERS)
ttl = st.one_of(st.integers(1, 20), st.just(0))
token = st.integers(0, 4)

ops = st.one_of(
    st.builds(RwLockTryRead, name, holder, ttl),
    st.builds(RwLockTryWrite, name, holder, ttl, st.sampled_from([0, 0, 5, 15])),
    st.builds(RwLockReleaseRead, name, holder),
    st.builds(RwLockReleaseWrite, name, holder, token),
    st.builds(RwLockDowngrade, name, holder, token, ttl),
)


@dataclass
class M:
    token: int = 0
    writer: tuple[str, int, int] | None = None  # holder, token, deadline
    readers: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)

    def live(self, now: int) -> M:
        """A copy without what expired by `now` (stored state keeps it until the next write: a clock
        that goes back can revive it)."""
        writer = self.writer if self.writer and now <= self.writer[2] else None
        readers = {h: d for h, d in self.readers.items() if now <= d}
        return M(self.token, writer, readers, {h: d for h, d in self.pending.items() if now <= d})


def model_step(models: dict[str, M], op: RwLockOp, now: int) -> tuple[bool, int | None]:
    """(is_success, fencing token the result must carry)."""
    if getattr(op, "ttl_ms", 1) == 0:
        return (False, None)
    m = models.get(op.name, M()).live(now)
    rewriter = m.writer is not None and m.writer[0] == op.holder_id
    ok, token = _decide(m, op, now)
    # The layer writes the pruned, updated state on success, and a waiting writer's registration.
    if ok or (isinstance(op, RwLockTryWrite) and op.wait_ms and not rewriter):
        models[op.name] = m
    return (ok, token)


def _decide(m: M, op: RwLockOp, now: int) -> tuple[bool, int | None]:
    h = op.holder_id
    if isinstance(op, RwLockTryRead):
        if m.writer or any(p != h for p in m.pending):
            return (False, m.writer[1] if m.writer else None)
        m.readers[h] = now + op.ttl_ms
        return (True, None)
    if isinstance(op, RwLockTryWrite):
        if m.writer and m.writer[0] == h:
            return (False, m.writer[1])
        if m.writer or m.readers:
            if op.wait_ms:
                m.pending[h] = now + op.wait_ms
            return (False, m.writer[1] if m.writer else None)
        m.token += 1
        m.writer = (h, m.token, now + op.ttl_ms)
        m.pending.pop(h, None)
        m.readers = {}
        return (True, m.token)
    if isinstance(op, RwLockReleaseRead):
        if h not in m.readers:
            return (False, m.writer[1] if m.writer else None)
        del m.readers[h]
        return (True, None)
    if not m.writer or m.writer[0] != h or m.writer[1] != op.fencing_token:
        return (False, m.writer[1] if m.writer else None)
    if isinstance(op, RwLockReleaseWrite):
        m.writer = None
        return (True, None)
    m.writer = None
    m.readers = {h: now + op.ttl_ms}
    return (True, op.fencing_token)


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


@settings(max_examples=250)
@given(st.lists(st.tuples(ops, st.integers(-2, 8)), max_size=40))
def test_rwlocks_match_the_model(steps: list[tuple[RwLockOp, int]]) -> None:
    kv, models = KvStateMachine(layers=APPLIERS), {}  # type: ignore[var-annotated]
    now = 100
    write_tokens: dict[str, list[int]] = {n: [] for n in NAMES}
    for index, (op, dt) in enumerate(steps, start=1):
        now += dt
        before = dict(kv.items(rwlock.PREFIX))
        res = kv.apply(index, through_log(rwlock.LAYER.command(op, now)))
        ok, expected_token = model_step(models, op, now)
        assert (res.is_success, res.fencing_token) == (ok, expected_token), (op, res)
        assert (res.error is None) == res.is_success
        if not res.is_success and not (isinstance(op, RwLockTryWrite) and op.wait_ms):
            assert dict(kv.items(rwlock.PREFIX)) == before, "a failure wrote something"
        if res.is_success and isinstance(op, RwLockTryWrite):
            write_tokens[op.name].append(res.fencing_token)
        for n in NAMES:
            s = rwlock.read_state(KvView(kv), n).live(now)
            assert not (s.writer and s.readers), "a writer and readers at once"
            m = models.get(n, M()).live(now)
            assert {r.holder_id for r in s.readers} == set(m.readers)
            assert (s.writer.holder_id if s.writer else None) == (m.writer[0] if m.writer else None)
            status = rwlock.status(KvView(kv), n, now)
            assert status.mode == ("write" if m.writer else "read" if m.readers else "free")
            assert status.reader_count == len(m.readers)
    for n, tokens in write_tokens.items():
        assert tokens == sorted(set(tokens)), f"write tokens of {n} not strictly increasing"


def test_a_waiting_writer_holds_off_new_readers_until_its_wait_ends() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    run = lambda i, op, now: kv.apply(i, rwlock.LAYER.command(op, now))  # noqa: E731
    assert run(1, RwLockTryRead("n", "r1", 1_000), 0).is_success
    assert run(2, RwLockTryWrite("n", "w", 1_000, 100), 1).error == "readers hold the lock"
    assert run(3, RwLockTryRead("n", "r2", 1_000), 2).error == "write lock pending"
    assert run(4, RwLockTryRead("n", "r2", 1_000), 102).is_success  # the writer gave up at 101
    assert run(5, RwLockReleaseRead("n", "r1"), 103).is_success
    assert run(6, RwLockReleaseRead("n", "r2"), 104).reader_count == 0
    w = run(7, RwLockTryWrite("n", "w", 1_000, 0), 105)
    assert (w.is_success, w.fencing_token, w.mode) == (True, 1, "write")
    bad = run(8, RwLockReleaseWrite("n", "w", 9), 106)
    assert bad.error == "fencing token mismatch: expected 1, got 9"
    assert run(9, RwLockReleaseWrite("n", "x", 1), 106).error == "write lock held by 'w', not 'x'"
    d = run(10, RwLockDowngrade("n", "w", 1, 1_000), 107)
    assert (d.is_success, d.mode, d.fencing_token, d.reader_count) == (True, "read", 1, 1)
    assert run(11, RwLockTryWrite("n", "w2", 1_000, 0), 108).error == "readers hold the lock"
    assert run(12, RwLockReleaseRead("n", "w"), 109).is_success
    assert run(13, RwLockTryWrite("n", "w2", 1_000, 0), 110).fencing_token == 2
