"""Property test: queues against a model (reference §7.8, library semantics), every operation
through the log codec and `KvStateMachine.apply`, with time driven explicitly: FIFO by id, one item
in flight per message group, dedup window, TTL, visibility timeout (redelivery), max delivery
attempts → DLQ, nack (to DLQ or back), extend, redrive; and the structural invariant that an id is
in at most one of ready / pending / DLQ."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import KvStateMachine, KvView, LayerCommand, decode_batch, encode_batch
from aspen.layers import APPLIERS, queue
from aspen.layers.queue import (
    QueueAck,
    QueueCreate,
    QueueDequeue,
    QueueEnqueue,
    QueueExtend,
    QueueNack,
    QueueRedrive,
    QueueResult,
)

Q = "jobs"


def through_log(cmd: LayerCommand) -> LayerCommand:
    (decoded,) = decode_batch(encode_batch([cmd]))
    assert isinstance(decoded, LayerCommand)
    return decoded


@dataclass
class Item:
    id: int
    payload: bytes
    expires: int
    group: str | None
    attempts: int = 0
    receipt: str = ""
    deadline: int = 0


@dataclass
class Model:
    visibility: int = 30_000
    ttl: int = 0
    max_attempts: int = 3
    exists: bool = False
    next_id: int = 1
    ready: dict[int, Item] = field(default_factory=dict)
    pending: dict[int, Item] = field(default_factory=dict)
    dlq: dict[int, Item] = field(default_factory=dict)
    dedup: dict[str, tuple[int, int]] = field(default_factory=dict)

    def create(self, op: QueueCreate) -> bool:
        if self.exists:
            return False
        self.exists, self.visibility, self.ttl, self.max_attempts = (
            True,
            op.default_visibility_timeout_ms,
            op.default_ttl_ms,
            op.max_delivery_attempts,
        )
        return True

    def enqueue(self, op: QueueEnqueue, now: int) -> list[int]:
        self.exists = True
        ids = []
        for payload, ttl_ms, group, dedup in op.items:
            if dedup is not None and dedup in self.dedup and self.dedup[dedup][1] > now:
                ids.append(self.dedup[dedup][0])
                continue
            ttl = ttl_ms or self.ttl
            item = Item(self.next_id, payload, now + ttl if ttl else 0, group)
            self.ready[item.id] = item
            if dedup is not None:
                self.dedup[dedup] = (item.id, now + 300_000)
            ids.append(item.id)
            self.next_id += 1
        return ids

    def dequeue(self, op: QueueDequeue, now: int) -> list[tuple[int, int]]:
        if not self.exists:
            return []
        for i in [i for i, it in self.pending.items() if it.deadline <= now]:
            self.ready[i] = self.pending.pop(i)
        busy = {it.group for it in self.pending.values() if it.group is not None}
        out: list[tuple[int, int]] = []
        for i in sorted(self.ready):
            if len(out) >= op.max_items:
                break
            it = self.ready[i]
            if it.expires and it.expires <= now:
                del self.ready[i]
            elif self.max_attempts and it.attempts >= self.max_attempts:
                self.dlq[i] = self.ready.pop(i)
            elif it.group is None or it.group not in busy:
                it.attempts += 1
                it.receipt = f"{i}:{now}:{op.nonce}"
                it.deadline = now + (op.visibility_timeout_ms or self.visibility)
                self.pending[i] = self.ready.pop(i)
                if it.group is not None:
                    busy.add(it.group)
                out.append((i, it.attempts))
        return out

    def find(self, receipt: str) -> Item | str:
        parts = receipt.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return queue.ERR_RECEIPT
        it = self.pending.get(int(parts[0]))
        if it is None:
            return queue.ERR_NOT_FOUND
        return it if it.receipt == receipt else queue.ERR_MISMATCH

    def visible(self, now: int) -> int:
        back = [it for it in self.pending.values() if it.deadline <= now]
        return sum(1 for it in [*self.ready.values(), *back] if not (it.expires and it.expires <= now))


@dataclass(frozen=True)
class Pick:
    """Use the n-th receipt handed out so far (or a malformed one)."""

    n: int
    kind: str
    flag: bool = False


names = st.sampled_from([None, "g1", "g2"])
ops = st.one_of(
    st.builds(
        QueueCreate, st.just(Q), st.sampled_from([1, 5, 30]), st.sampled_from([0, 20]), st.integers(0, 3)
    ),
    st.builds(
        QueueEnqueue,
        st.just(Q),
        st.lists(
            st.tuples(
                st.binary(max_size=3), st.sampled_from([0, 4, 50]), names, st.sampled_from([None, "d1", "d2"])
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        QueueDequeue,
        st.just(Q),
        st.just("c"),
        st.integers(1, 3),
        st.sampled_from([0, 3, 10]),
        st.integers(0, 9),
    ),
    st.builds(Pick, st.integers(0, 20), st.sampled_from(["ack", "nack", "extend", "bad"]), st.booleans()),
    st.builds(QueueRedrive, st.just(Q), st.integers(1, 8)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ops, st.integers(0, 6)), max_size=40))
def test_queue_matches_the_model(steps: list[tuple[object, int]]) -> None:
    kv, model = KvStateMachine(layers=APPLIERS), Model()
    receipts: list[str] = []
    now = 0
    for index, (step, dt) in enumerate(steps, start=1):
        now += dt
        op: queue.QueueOp
        if isinstance(step, Pick):
            receipt = receipts[step.n % len(receipts)] if receipts and step.kind != "bad" else "1:x:2"
            if step.kind == "nack":
                op = QueueNack(Q, receipt, step.flag, "boom" if step.flag else None)
            elif step.kind == "extend":
                op = QueueExtend(Q, receipt, 7)
            else:
                op = QueueAck(Q, receipt)
        else:
            assert isinstance(step, QueueCreate | QueueEnqueue | QueueDequeue | QueueRedrive)
            op = step
        res: QueueResult = kv.apply(index, through_log(queue.LAYER.command(op, now_ms=now)))
        if isinstance(op, QueueCreate):
            assert res.is_success and res.was_created == model.create(op)
        elif isinstance(op, QueueEnqueue):
            assert res.is_success and list(res.item_ids) == model.enqueue(op, now)
        elif isinstance(op, QueueDequeue):
            got = [(i.item_id, i.delivery_attempts) for i in res.items]
            assert res.is_success and got == model.dequeue(op, now)
            receipts += [i.receipt_handle for i in res.items]
        elif isinstance(op, QueueRedrive):
            assert res.is_success
            it = model.dlq.pop(op.item_id, None)
            if it is not None:
                it.attempts, it.expires = 0, now + model.ttl if model.ttl else 0
                model.ready[it.id] = it
        else:
            found = model.find(op.receipt_handle)
            if isinstance(found, str):
                assert (res.is_success, res.error) == (False, found)
                continue
            assert res.is_success, res.error
            if isinstance(op, QueueAck):
                del model.pending[found.id]
            elif isinstance(op, QueueExtend):
                found.deadline = now + 7
                assert res.new_deadline_ms == found.deadline
            else:
                del model.pending[found.id]
                if op.move_to_dlq or (model.max_attempts and found.attempts >= model.max_attempts):
                    model.dlq[found.id] = found
                else:
                    model.ready[found.id] = found
        stats = queue.status(KvView(kv), now, Q)
        assert stats.is_success and stats.does_exist == model.exists
        if model.exists:
            live_pending = sum(1 for it in model.pending.values() if it.deadline > now)
            assert (stats.visible_count, stats.pending_count, stats.dlq_count) == (
                model.visible(now),
                live_pending,
                len(model.dlq),
            )
        peeked = queue.peek(KvView(kv), now, Q, 100).items
        assert [i.item_id for i in peeked] == sorted(i.item_id for i in peeked)
        dead = {i.item_id for i in queue.dead_letters(KvView(kv), now, Q, 100).items}
        assert dead == set(model.dlq)
        # Structural invariant: an id lives in at most one category.
        keys = [k.rsplit(":", 1)[1] for k, _ in kv.items(queue.queue_key(Q) + ":") if ":dedup:" not in k]
        assert len(keys) == len(set(keys))


def test_receipt_of_a_redelivered_item_is_stale_and_bad_input_is_rejected() -> None:
    kv = KvStateMachine(layers=APPLIERS)

    def run(op: queue.QueueOp, now: int) -> QueueResult:
        res: QueueResult = kv.apply(now, queue.LAYER.command(op, now_ms=now))
        return res

    assert run(QueueEnqueue(Q, ((b"x", 0, None, None),)), 1).item_ids == (1,)
    first = run(QueueDequeue(Q, "a", 1, 10, 5), 2).items[0]
    # Visibility passed (deadline 12): another consumer gets it, the first receipt is now stale.
    second = run(QueueDequeue(Q, "b", 1, 10, 6), 12).items[0]
    assert (second.item_id, second.delivery_attempts) == (1, 2)
    assert run(QueueAck(Q, first.receipt_handle), 13).error == queue.ERR_MISMATCH
    assert run(QueueAck(Q, second.receipt_handle), 14).is_success
    assert run(QueueAck(Q, second.receipt_handle), 15).error == queue.ERR_NOT_FOUND
    assert run(QueueDequeue(Q, "", 1, 10, 5), 16).error == "consumer id cannot be empty"
    assert run(QueueDequeue(Q, "a", 101, 10, 5), 16).error == "max_items must be between 1 and 100"
    assert run(QueueEnqueue(Q, ()), 17).error == "batch size must be between 1 and 100"
    status = queue.status(KvView(kv), 18, Q)
    assert (status.total_enqueued, status.total_acked) == (1, 1)


def test_expired_dedup_entries_are_swept_by_later_enqueues() -> None:
    kv = KvStateMachine(layers=APPLIERS)
    for n, dedup in enumerate(["a", "b", "c", "d"], start=1):
        kv.apply(n, queue.LAYER.command(QueueEnqueue(Q, ((b"x", 0, None, dedup),)), now_ms=n))
    dedup_prefix = queue.queue_key(Q) + ":dedup:"
    assert [k.rsplit(":", 1)[1] for k, _ in kv.items(dedup_prefix)] == ["a", "b", "c", "d"]
    later = 1_000_000  # every entry is past its 5 minute window
    for n, dedup in enumerate(["e", "f"], start=10):
        kv.apply(n, queue.LAYER.command(QueueEnqueue(Q, ((b"x", 0, None, dedup),)), now_ms=later))
    assert [k.rsplit(":", 1)[1] for k, _ in kv.items(dedup_prefix)] == ["e", "f"]
