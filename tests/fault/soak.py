"""Soak the fault scenarios: `python -m tests.fault.soak --scenarios all --runs 5 [--seed N]`.

Each run forms a fresh 3-node cluster, runs the long workload through several fault/heal cycles of
one scenario, and checks the history. Prints, per scenario, runs, operations checked, faults
injected and whether every history was linearizable; exits 1 on any violation or failed run.
Partition scenarios run in their own network namespace (see scenarios.py); they are reported as
skipped when iptables or unshare is unavailable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios import ALL_SCENARIOS, PARTITION_SCENARIOS, SHORT, SOAK, run_isolated, run_scenario


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenarios", default="all", help=f"'all' or a comma list of {', '.join(ALL_SCENARIOS)}")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="seed of the first run; run i uses seed+i")
    ap.add_argument("--profile", choices=("soak", "short"), default="soak")
    args = ap.parse_args(argv)
    names = list(ALL_SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [n for n in names if n not in ALL_SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}")
    profile = SOAK if args.profile == "soak" else SHORT
    bad = False
    t0 = time.monotonic()
    print(f"{'scenario':<16}{'runs':>6}{'ops checked':>13}{'unknown':>9}{'faults':>8}  linearizable")
    with tempfile.TemporaryDirectory(prefix="aspen-soak-") as tmp:
        for name in names:
            runs = ops = unknown_ops = faults = 0
            verdicts: list[str] = []
            skipped = ""
            for i in range(args.runs):
                seed = args.seed + i
                root = Path(tmp) / f"{name}-{seed}"
                try:
                    if name in PARTITION_SCENARIOS:
                        res = run_isolated(name, seed, root, args.profile)
                    else:
                        res = run_scenario(name, seed, root, profile)
                except Exception as exc:  # a run that cannot finish is a failure, with its reason
                    print(f"  {name} seed {seed}: run failed: {type(exc).__name__}: {exc}", flush=True)
                    verdicts.append("error")
                    bad = True
                    continue
                if res.skipped:
                    skipped = res.skipped
                    break
                runs += 1
                ops += res.ops_checked
                unknown_ops += res.unknown_ops
                faults += res.faults_injected
                verdicts.append("yes" if res.linearizable else "NO")
                if not res.linearizable:
                    bad = True
                    print(f"  {name} seed {seed}: {res.message}", flush=True)
            if skipped:
                print(f"{name:<16} skipped: {skipped}", flush=True)
                continue
            ok = "yes" if verdicts and all(v == "yes" for v in verdicts) else "NO"
            print(f"{name:<16}{runs:>6}{ops:>13}{unknown_ops:>9}{faults:>8}  {ok}", flush=True)
    print(f"total time {time.monotonic() - t0:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
