"""A legitimate client in its own process, for the fuzz and abuse tests: linearizable reads of one
key, one at a time, recording each call's latency, until a stop file appears (bounded in count and
time either way). Its own process, so the fuzzer's CPU and GIL never count as the node's stall.

Usage: python probe.py TICKET_FILE STOP_FILE OUT_JSON [MAX_SECONDS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


async def probe(ticket: str, stop: Path, max_seconds: float, max_calls: int = 1_000_000) -> dict[str, object]:
    from aspen.api.errors import AspenError
    from aspen.client import AspenClient

    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds
    async with AspenClient(ticket, timeout=10) as client:
        for _ in range(max_calls):
            if stop.exists() or time.monotonic() > deadline:
                break
            started = time.monotonic()
            try:
                await client.get("probe-key")
            except AspenError as err:
                errors.append(str(err))
            latencies.append(time.monotonic() - started)
    return {"latencies": latencies, "errors": errors}


def main() -> None:
    ticket_file, stop_file, out = sys.argv[1:4]
    max_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3600.0
    result = asyncio.run(probe(Path(ticket_file).read_text(), Path(stop_file), max_seconds))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
