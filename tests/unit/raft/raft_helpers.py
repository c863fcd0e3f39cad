"""A tiny synchronous cluster harness for unit tests of the Raft core.

Each node's Ready is processed the way the driver does it (persist -> send -> apply -> advance);
messages are queued and delivered in FIFO order by `stabilize()`; links can be cut.
"""

from __future__ import annotations

import random
from collections import deque

from aspen.raft.core import (
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    RawNode,
    ReadState,
    StateRole,
    decode_conf_change,
)


def make_storage(voters: list[int], learners: list[int] | None = None) -> MemoryStorage:
    st = MemoryStorage()
    st.set_conf_state(ConfState(voters=tuple(voters), learners=tuple(learners or ())))
    return st


def make_config(nid: int, **kw: object) -> Config:
    kw.setdefault("rng", random.Random(nid))
    return Config(id=nid, **kw)  # type: ignore[arg-type]


class Cluster:
    def __init__(self, voters: list[int], learners: list[int] | None = None, **cfg: object) -> None:
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.dropped: dict[int, list[bytes]] = {}
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[int, int]] = set()
        self.sent: list[Message] = []
        for nid in [*voters, *(learners or [])]:
            self.add_node(nid, make_storage(voters, learners), **cfg)

    @classmethod
    def bootstrapped(cls, voters: list[int], **cfg: object) -> Cluster:
        """A cluster created the production way: empty disks + `bootstrap(voters)` everywhere,
        so the membership is in the log (a node added later learns it from there)."""
        c = cls([], **cfg)
        for nid in voters:
            c.add_node(nid, MemoryStorage(), **cfg)
            c.nodes[nid].bootstrap(voters)
        c.stabilize()
        return c

    def add_node(self, nid: int, storage: MemoryStorage, **cfg: object) -> RawNode:
        self.storages[nid] = storage
        self.nodes[nid] = RawNode(make_config(nid, **cfg), storage)
        self.applied[nid] = []
        self.read_states[nid] = []
        self.dropped[nid] = []
        return self.nodes[nid]

    def raft(self, nid: int):  # type: ignore[no-untyped-def]
        return self.nodes[nid].raft

    def process(self, nid: int) -> None:
        rn = self.nodes[nid]
        st = self.storages[nid]
        while rn.has_ready():
            rd = rn.ready()
            for m in rd.early_messages:  # a leader's appends go out before its own fsync
                self.sent.append(m)
                self.queue.append(m)
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            for m in rd.messages:
                self.sent.append(m)
                self.queue.append(m)
            for e in rd.committed_entries:
                if e.type == EntryType.CONF_CHANGE:
                    st.set_conf_state(rn.apply_conf_change(decode_conf_change(e.data)))
                self.applied[nid].append(e)
            self.read_states[nid].extend(rd.read_states)
            self.dropped[nid].extend(rd.dropped_proposals)
            rn.advance(rd)

    def process_all(self) -> None:
        for nid in list(self.nodes):
            self.process(nid)

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def heal(self) -> None:
        self.cut.clear()

    def stabilize(self, limit: int = 10000) -> None:
        self.process_all()
        while self.queue and limit > 0:
            limit -= 1
            m = self.queue.popleft()
            if (m.frm, m.to) in self.cut or m.to not in self.nodes:
                continue
            self.nodes[m.to].step(m)
            self.process(m.to)

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].tick()
        self.process(nid)

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for rn in self.nodes.values():
                rn.tick()
            self.stabilize()

    def elect(self, nid: int) -> None:
        self.nodes[nid].campaign()
        self.stabilize()
        assert self.raft(nid).state == StateRole.LEADER

    def leader(self) -> int | None:
        for nid, rn in self.nodes.items():
            if rn.raft.state == StateRole.LEADER:
                return nid
        return None

    def data_applied(self, nid: int) -> list[bytes]:
        return [e.data for e in self.applied[nid] if e.type == EntryType.NORMAL and e.data]
