"""Property test: token buckets against a model (reference §7.4 with the [Py] fix: tokens >
capacity is an error result), through the log path with explicit, sometimes backwards, time.

Checked besides the model, independently of its arithmetic: over any run, the tokens granted from a
bucket never exceed its capacity plus what the rate refilled over the time the clock advanced, and
a refused acquire's `retry_after_ms` is enough: retried then (with nobody else in between), it
succeeds.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, ratelimit
from aspen.layers.ratelimit import RateLimiterReset, RateLimiterResult, RateLimiterTryAcquire

CAPACITY, RATE = 5, 2.5
ops = st.one_of(
    st.builds(RateLimiterTryAcquire, st.just("k"), st.integers(0, 7), st.just(CAPACITY), st.just(RATE)),
    st.builds(RateLimiterReset, st.just("k"), st.just(CAPACITY), st.just(RATE)),
    st.just("available"),
)


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


class Model:
    def __init__(self) -> None:
        self.tokens: float = CAPACITY
        self.last: int | None = None

    def level(self, now: int) -> tuple[float, int]:
        if self.last is None:
            return float(CAPACITY), now
        return min(CAPACITY, self.tokens + max(0, now - self.last) / 1000 * RATE), max(self.last, now)


@settings(max_examples=300)
@given(st.lists(st.tuples(ops, st.integers(-200, 900)), max_size=40))
def test_buckets_match_the_model(
    steps: list[tuple[RateLimiterTryAcquire | RateLimiterReset | str, int]],
) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    # Tokens granted since `start` (when the bucket was created full, or last reset) and the latest
    # time the clock reached since then.
    now = high = 10_000
    start: int | None = None
    granted = 0
    for index, (op, dt) in enumerate(steps, start=1):
        now += dt
        high = max(high, now)
        if op == "available":
            res: RateLimiterResult = ratelimit.available(KvView(kv), "k", CAPACITY, RATE, now)
            assert res == RateLimiterResult(True, math.floor(model.level(now)[0]))
            continue
        assert not isinstance(op, str)
        res = kv.apply(index, through_log(ratelimit.LAYER.command(op, now)))
        if isinstance(op, RateLimiterReset):
            assert res == RateLimiterResult(True, CAPACITY)
            model.tokens, model.last, granted = float(CAPACITY), now, 0
            start = high = now
            continue
        level, at = model.level(now)
        if op.tokens < 1:
            assert res == RateLimiterResult(False, error="tokens must be at least 1")
        elif op.tokens > CAPACITY:
            assert res == RateLimiterResult(False, error="requested tokens exceed capacity")
        elif op.tokens > level:
            assert not res.is_success and res.error == "rate limited" and res.retry_after_ms
            # Waiting retry_after_ms is enough.
            assert level + res.retry_after_ms / 1000 * RATE >= op.tokens - 1e-9
        else:
            assert res == RateLimiterResult(True, math.floor(level - op.tokens))
            if model.last is None:
                start = high = now
            model.tokens, model.last = level - op.tokens, at
            granted += op.tokens
    if start is not None:
        assert granted <= CAPACITY + (high - start) / 1000 * RATE + 1e-6


def test_more_tokens_than_capacity_and_bad_rates_are_errors_not_crashes() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    for i, op in enumerate(
        [
            RateLimiterTryAcquire("k", 11, 10, 1.0),
            RateLimiterTryAcquire("k", 1, 10, float("inf")),
            RateLimiterTryAcquire("k", 1, 10, float("nan")),
            RateLimiterTryAcquire("k", 1, 10, -1.0),
            RateLimiterTryAcquire("k", 1, 0, 1.0),
            RateLimiterReset("", 10, 1.0),
        ],
        start=1,
    ):
        res = kv.apply(i, ratelimit.LAYER.command(op, 0))
        assert not res.is_success and res.error, op
    assert list(kv.items(ratelimit.PREFIX)) == []
    # A tiny rate gives a huge, but representable, wait.
    assert kv.apply(7, ratelimit.LAYER.command(RateLimiterTryAcquire("k", 10, 10, 1.0), 0)).is_success
    slow = kv.apply(8, ratelimit.LAYER.command(RateLimiterTryAcquire("k", 10, 10, 1e-300), 0))
    assert slow.retry_after_ms == 2**64 - 1
