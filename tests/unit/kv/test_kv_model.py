"""Property test: the machine behaves like a plain-dict model over random command sequences.

The model is written directly from the product semantics (versions, revisions, CAS, batches,
conditions, scan pagination) with a `dict` and `sorted`, independently of the machine's code.
Every result, the full contents after every step, paginated scans, and a snapshot round trip at the
end are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import (
    BatchRead,
    BatchReadResult,
    BatchWrite,
    BatchWriteResult,
    CasResult,
    Command,
    CommandResult,
    CompareAndDelete,
    CompareAndSwap,
    Condition,
    ConditionalBatchWrite,
    ConditionalBatchWriteResult,
    Delete,
    DeleteOp,
    DeleteResult,
    KeyExists,
    KeyNotExists,
    KvEntry,
    KvStateMachine,
    Read,
    ReadResult,
    Scan,
    SetOp,
    ValueEquals,
    Write,
    WriteResult,
    decode_batch,
    encode_batch,
)

# A small key space so commands collide; "" and an over-long key exercise the error paths.
LONG_KEY = "x" * 1025
KEYS = ["a", "a/1", "a/2", "ab", "b", "b/é", "😀", "\u00ff", "\u0100", "", LONG_KEY]
VALUES = [b"", b"0", b"1", b"\x00\xff"]


def model_error(cmd: Command) -> str | None:
    """The first validation error, restated for the model's restricted inputs."""

    def key_err(key: str) -> str | None:
        if key == "":
            return "key cannot be empty"
        if len(key.encode()) > 1024:
            return f"key size {len(key.encode())} exceeds maximum of 1024 bytes"
        return None

    def op_keys(ops: tuple[SetOp | DeleteOp, ...]) -> list[str]:
        return [op.key for op in ops]

    if isinstance(cmd, Write | Delete | CompareAndSwap | CompareAndDelete):
        return key_err(cmd.key)
    if isinstance(cmd, BatchWrite):
        if len(cmd.ops) > 100:
            return f"batch size {len(cmd.ops)} exceeds maximum of 100 keys"
        return next((e for e in map(key_err, op_keys(cmd.ops)) if e), None)
    n = len(cmd.conditions) + len(cmd.ops)
    if n > 100:
        return f"batch size {n} exceeds maximum of 100 keys"
    keys = [c.key for c in cmd.conditions] + op_keys(cmd.ops)
    return next((e for e in map(key_err, keys) if e), None)


@dataclass
class Model:
    data: dict[str, KvEntry] = field(default_factory=dict)

    def put(self, index: int, key: str, value: bytes, lease: int | None) -> None:
        old = self.data.get(key)
        if old is None:
            self.data[key] = KvEntry(value, 1, index, index, lease)
        else:
            self.data[key] = KvEntry(value, old.version + 1, old.create_revision, index, lease)

    def value(self, key: str) -> bytes | None:
        entry = self.data.get(key)
        return None if entry is None else entry.value

    def holds(self, cond: Condition) -> bool:
        if isinstance(cond, ValueEquals):
            return self.value(cond.key) == cond.expected
        if isinstance(cond, KeyExists):
            return cond.key in self.data
        return cond.key not in self.data

    def run_ops(self, index: int, ops: tuple[SetOp | DeleteOp, ...]) -> None:
        for op in ops:
            if isinstance(op, SetOp):
                self.put(index, op.key, op.value, None)
            else:
                self.data.pop(op.key, None)

    def apply(self, index: int, cmd: Command) -> CommandResult:
        err = model_error(cmd)
        if isinstance(cmd, Write):
            if err:
                return WriteResult(False, err)
            self.put(index, cmd.key, cmd.value, cmd.lease_id)
            return WriteResult(True)
        if isinstance(cmd, Delete):
            if err:
                return DeleteResult(cmd.key, False, err)
            return DeleteResult(cmd.key, self.data.pop(cmd.key, None) is not None)
        if isinstance(cmd, CompareAndSwap):
            if err:
                return CasResult(False, None, err)
            current = self.value(cmd.key)
            if current != cmd.expected:  # None == None covers "expected absent"
                return CasResult(False, current)
            self.put(index, cmd.key, cmd.new_value, None)
            return CasResult(True)
        if isinstance(cmd, CompareAndDelete):
            if err:
                return CasResult(False, None, err)
            current = self.value(cmd.key)
            if current != cmd.expected:
                return CasResult(False, current)
            del self.data[cmd.key]
            return CasResult(True)
        if isinstance(cmd, BatchWrite):
            if err:
                return BatchWriteResult(False, 0, err)
            self.run_ops(index, cmd.ops)
            return BatchWriteResult(True, len(cmd.ops))
        if err:
            return ConditionalBatchWriteResult(False, False, 0, None, None, err)
        for i, cond in enumerate(cmd.conditions):
            if not self.holds(cond):
                return ConditionalBatchWriteResult(False, False, 0, i, "condition not met")
        self.run_ops(index, cmd.ops)
        return ConditionalBatchWriteResult(True, True, len(cmd.ops))

    def sorted_keys(self, prefix: str = "") -> list[str]:
        # Independent statement of the ordering rule: UTF-8 byte order.
        return sorted((k for k in self.data if k.startswith(prefix)), key=lambda k: k.encode("utf-8"))


# Mostly a hot set of three keys and two values, so that CAS expectations and conditions often match.
keys = st.sampled_from(["a", "a/1", "b"]) | st.sampled_from(KEYS)
values = st.sampled_from([b"0", b"1"]) | st.sampled_from(VALUES)
# Writes here never name a lease: attaching needs a granted lease, which the lease model test
# (test_lease_model.py) covers together with grant, keepalive, revoke and expiry.
leases = st.none()
ops = st.one_of(st.builds(SetOp, keys, values), st.builds(DeleteOp, keys))
conds = st.one_of(
    st.builds(ValueEquals, keys, values), st.builds(KeyExists, keys), st.builds(KeyNotExists, keys)
)
single_key = st.one_of(
    st.builds(Write, keys, values, leases),
    st.builds(Delete, keys),
    st.builds(CompareAndSwap, keys, st.none() | values, values),
    st.builds(CompareAndDelete, keys, values),
)
commands = st.one_of(
    single_key,
    single_key,  # listed twice: single-key commands are where versions and leases interact most
    st.builds(BatchWrite, st.lists(ops, max_size=6).map(tuple)),
    st.builds(
        ConditionalBatchWrite, st.lists(conds, max_size=4).map(tuple), st.lists(ops, max_size=4).map(tuple)
    ),
    # Over-limit batches must fail without touching anything (the 101st op would delete "a").
    st.just(BatchWrite((*(SetOp(f"a/{i}", b"1") for i in range(100)), DeleteOp("a")))),
)
# Index steps of 0 model several commands sharing one log entry.
steps = st.lists(st.tuples(st.integers(0, 2), commands), min_size=5, max_size=50)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 4), st.sampled_from(["", "a", "a/", "b", "😀"]))
def test_machine_matches_dict_model(script: list[tuple[int, Command]], page_size: int, prefix: str) -> None:
    kv, model = KvStateMachine(), Model()
    index = 0
    for step, cmd in script:
        index += step
        # The command also travels through the log codec first, as in the real node.
        (decoded,) = decode_batch(encode_batch([cmd]))
        assert kv.apply(index, decoded) == model.apply(index, cmd), cmd
        assert kv.applied_index == index
        assert dict(kv.items()) == model.data
        assert len(kv) == len(model.data)

    for key in KEYS:
        assert kv.read(Read(key)) == ReadResult(model.value(key), key in model.data)
    assert kv.batch_read(BatchRead(tuple(KEYS[:5]))) == BatchReadResult(tuple(map(model.value, KEYS[:5])))

    # Whole scan and paginated scan both equal the model's byte-ordered key list.
    expected = model.sorted_keys(prefix)
    assert [e.key for e in kv.scan(Scan(prefix)).entries] == expected
    assert [k for k, _ in kv.items()] == model.sorted_keys()
    if page_size:
        got: list[str] = []
        token: str | None = None
        while True:
            page = kv.scan(Scan(prefix, page_size, token))
            assert page.count <= page_size
            got += [e.key for e in page.entries]
            assert page.is_truncated == (len(got) < len(expected))
            if not page.is_truncated:
                break
            token = page.continuation_token
        assert got == expected

    restored = KvStateMachine.from_snapshot(kv.snapshot())
    assert dict(restored.items()) == model.data
    assert restored.state_hash() == kv.state_hash()
    assert restored.applied_index == index
