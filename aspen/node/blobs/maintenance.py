"""The background loops: GC of untagged copies, and the repair cycle (scrub local copies; on the
leader, re-replicate what is short, most urgent first)."""

from __future__ import annotations

import asyncio
import logging
import time

from aspen.blob.policy import choose_targets, repair_order
from aspen.node.blobs.core import BlobCore
from aspen.node.blobs.framing import TransferError
from aspen.node.blobs.replication import Replication
from aspen.raft.core.types import StateRole

__all__ = ["Maintenance"]

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, core: BlobCore, replication: Replication) -> None:
        self.core = core
        self.replication = replication
        self.repair_running = False

    async def gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self.core.config.gc_interval_s)
            try:
                await self.collect_garbage()
            except Exception:
                log.exception("blob gc failed")

    async def collect_garbage(self) -> list[str]:
        removed: list[str] = await asyncio.to_thread(
            self.core.blobs.gc, now=time.time(), grace_s=self.core.config.gc_grace_s
        )
        for digest in removed:
            log.info("blob collected", extra={"hash": digest})
            await self.core.forget_quietly(digest)
        return removed

    async def repair_loop(self) -> None:
        """Every repair interval the leader re-replicates what is short; every scrub interval each
        node re-hashes its own copies."""
        config = self.core.config
        loop = asyncio.get_running_loop()
        next_scrub = loop.time() + config.scrub_interval_s
        while True:
            await asyncio.sleep(config.repair_interval_s)
            scrub = loop.time() >= next_scrub
            if scrub:
                next_scrub = loop.time() + config.scrub_interval_s
            try:
                await self.run_repair_cycle(plan=self.core.raft.role == StateRole.LEADER, scrub=scrub)
            except Exception:
                log.exception("blob repair cycle failed")

    async def run_repair_cycle(self, *, plan: bool, scrub: bool = True) -> None:
        """Scrub local copies (bounded bytes per cycle), then — on the planning node — copy every
        under-replicated blob to new holders, most urgent first."""
        if self.repair_running:
            return
        self.repair_running = True
        try:
            if scrub:
                await self._scrub()
            if plan:
                await self._plan_repairs()
        finally:
            self.repair_running = False

    async def _scrub(self) -> None:
        store = self.core.blobs
        budget = self.core.config.scrub_bytes_per_cycle
        for info in await asyncio.to_thread(lambda: list(store.iter_blobs())):
            if budget <= 0:
                break
            budget -= info.size_bytes
            if await asyncio.to_thread(store.verify, info.hash):
                continue
            log.warning("scrub found a corrupt blob copy; repairing", extra={"hash": info.hash})
            tags = store.tags_of(info.hash)
            await self.core.quarantine(info.hash)
            if not tags:
                continue  # an untagged cache copy: nothing to keep
            record = await self.core.meta.read_record(info.hash)
            others = [n for n in (record.nodes if record else ()) if n != self.core.node_id]
            try:
                await self.replication.ensure_local(info.hash, others, tags[0])
            except TransferError as err:
                log.warning(
                    "corrupt blob copy not repairable now", extra={"hash": info.hash, "error": str(err)}
                )

    async def _plan_repairs(self) -> None:
        records = await self.core.meta.all_records()
        members = self.core.members()
        for rec in repair_order(records, members):
            alive = [n for n in rec.nodes if n in members]
            if not alive:
                continue  # critical: nobody left to copy from
            targets = choose_targets(rec.hash, alive, members, rec.policy.replication_factor - len(alive))
            if not targets:
                continue
            ok, failed = await self.replication.ask_targets(rec.hash, rec.size, alive, targets)
            log.info("blob repaired", extra={"hash": rec.hash, "new_holders": ok, "failed": failed})
