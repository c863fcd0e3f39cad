"""Fault scenarios: form a cluster, run the workload, inject one kind of fault (seeded), heal, check.

Every run ends the same way: heal, wait for exactly one leader, read every key through every node,
check the whole history for linearizability, and wait until every node has applied the same index
and reports the same state hash.

Partition scenarios need iptables rules, so they run in a child process inside a fresh network
namespace (`unshare -n`, we are root): the rules then touch nothing outside the test, and the
namespace and its rules vanish with the child. Run one by hand with
`python tests/fault/scenarios.py --scenario split --seed 3 --root /tmp/x` (add `unshare -n` in
front for partition scenarios).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Importable both under pytest (tests/ and tests/fault on sys.path) and as a plain script.
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from cluster import ELECTION_TIMEOUT_MAX_S, Cluster, heal_network, iptables_missing_reason  # noqa: E402
from harness import wait_for  # noqa: E402
from linearizability import Status, check  # noqa: E402
from workload import Workload, WorkloadConfig  # noqa: E402

PARTITION_SCENARIOS = ("isolate-leader", "split", "packet-loss")
PROCESS_SCENARIOS = ("kill-restart", "kill-leader", "pause-leader")
ALL_SCENARIOS = PROCESS_SCENARIOS + PARTITION_SCENARIOS


@dataclass
class Profile:
    """How long a run lasts. `short` is the CI variant; `soak` the long one."""

    cycles: int = 1  # fault → heal cycles per run
    fault_seconds: float = 3.0  # how long each fault is held
    settle_ops: int = 20  # successful ops between cycles (the cluster made progress again)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)


# The run stops its workload once it has seen progress after the last heal, so the workload's own
# bounds only guard against a hang: they must outlast every fault cycle, or "progress after
# healing" cannot be seen. The op budgets are far above what the faults leave time for (a client
# does a few hundred ops per second on loopback), so time is the bound that binds.
SHORT = Profile(
    cycles=1, fault_seconds=2.5, workload=WorkloadConfig(max_ops_per_client=5_000, max_seconds=25)
)
SOAK = Profile(
    cycles=3, fault_seconds=4.0, workload=WorkloadConfig(max_ops_per_client=20_000, max_seconds=90)
)


@dataclass
class ScenarioResult:
    scenario: str
    seed: int
    ops_recorded: int = 0
    ops_checked: int = 0
    ok_ops: int = 0
    unknown_ops: int = 0
    failed_ops: int = 0
    faults_injected: int = 0
    linearizable: bool = False
    converged_index: int = 0
    message: str = ""
    seconds: float = 0.0
    skipped: str = ""
    errors: dict[str, int] = field(default_factory=dict)


class Nemesis:
    """Injects the scenario's fault, seeded, and undoes it."""

    def __init__(self, scenario: str, cluster: Cluster, rng: random.Random) -> None:
        self.scenario, self.cluster, self.rng = scenario, cluster, rng
        self.faults = 0
        self._undo: Callable[[], None] | None = None

    def inject(self) -> str:
        c, rng = self.cluster, self.rng
        ids = [n.node_id for n in c.nodes]
        s = self.scenario
        if s == "kill-restart":
            victim = rng.choice(ids)
            c.kill9(victim)
            self._undo = lambda: c.restart(victim)
            what = f"kill -9 node {victim}"
        elif s == "kill-leader":
            victim = c.leader()
            c.kill9(victim)
            self._undo = lambda: c.restart(victim)
            what = f"kill -9 leader {victim}"
        elif s == "pause-leader":
            victim = c.leader()
            c.pause(victim)
            self._undo = lambda: c.resume(victim)
            what = f"SIGSTOP leader {victim}"
        elif s == "isolate-leader":
            victim = c.leader()
            c.isolate([victim])
            self._undo = heal_network
            what = f"isolate leader {victim}"
        elif s == "split":
            minority = [rng.choice(ids)]
            c.isolate(minority)
            self._undo = heal_network
            what = f"split {minority} | {[i for i in ids if i not in minority]}"
        elif s == "packet-loss":
            p = rng.choice([0.2, 0.3, 0.4])
            c.lossy(p)
            self._undo = heal_network
            what = f"drop {p:.0%} of node-to-node packets"
        else:
            raise ValueError(f"unknown scenario {s!r}")
        self.faults += 1
        return what

    def heal(self) -> None:
        if self._undo is not None:
            undo, self._undo = self._undo, None
            undo()


def run_scenario(scenario: str, seed: int, root: Path, profile: Profile = SHORT) -> ScenarioResult:
    """One run in this process (partition scenarios must already be inside a network namespace)."""
    started = time.monotonic()
    result = ScenarioResult(scenario, seed)
    if scenario in PARTITION_SCENARIOS:
        reason = iptables_missing_reason()
        if reason:
            result.skipped = reason
            return result
    rng = random.Random(seed)
    cluster = Cluster(root)
    nemesis = Nemesis(scenario, cluster, rng)
    try:
        cluster.start()
        order = [n.node_id for n in cluster.nodes]
        wl_cfg = WorkloadConfig(**{**asdict(profile.workload), "seed": seed})
        workload = Workload([cluster.tickets[i] for i in order], wl_cfg).start()
        for cycle in range(profile.cycles):
            # The cluster serves before each fault: that is the state the fault should disturb.
            mark = workload.mark()
            wait_for(
                lambda m=mark: workload.ok_since(m) >= profile.settle_ops or workload.crash is not None,
                timeout=30,
                what=f"workload progress before fault {cycle + 1}",
            )
            what = nemesis.inject()
            print(f"[{scenario} seed={seed}] fault {cycle + 1}: {what}", flush=True)
            # Holding the fault is the point of the scenario, not a synchronisation.
            time.sleep(max(profile.fault_seconds, ELECTION_TIMEOUT_MAX_S * 1.5))
            nemesis.heal()
        mark = workload.mark()
        wait_for(
            lambda: workload.ok_since(mark) >= profile.settle_ops or workload.crash is not None,
            timeout=30,
            what="workload progress after healing",
        )
        workload.stop()
        cluster.leader()
        asyncio.run(workload.final_reads([cluster.tickets[i] for i in order]))
        verdict = check(workload.history)
        result.linearizable = verdict.ok
        result.ops_checked = verdict.ops_checked
        result.message = verdict.summary()
        result.converged_index, _ = cluster.converge()
        assert cluster.alive(), "a node died during the run"
        result.ops_recorded = len(workload.history)
        result.ok_ops = workload.count(Status.OK)
        result.unknown_ops = workload.count(Status.UNKNOWN)
        result.failed_ops = workload.count(Status.FAIL)
        result.errors = dict(workload.errors)
    finally:
        nemesis.heal()
        cluster.stop()
        result.faults_injected = nemesis.faults
        result.seconds = round(time.monotonic() - started, 1)
    return result


# ------------------------------------------------------------------------- network namespace --
def netns_missing_reason() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "partition scenarios need root for unshare -n and iptables"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"unshare -n does not work here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def run_isolated(
    scenario: str, seed: int, root: Path, profile_name: str = "short", timeout: float = 600.0
) -> ScenarioResult:
    """Run one scenario in a child process inside a new network namespace; return its result."""
    reason = netns_missing_reason()
    if reason:
        return ScenarioResult(scenario, seed, skipped=reason)
    root.mkdir(parents=True, exist_ok=True)
    out = root / "result.json"
    cmd = [
        "unshare",
        "-n",
        sys.executable,
        str(HERE / "scenarios.py"),
        "--scenario",
        scenario,
        "--seed",
        str(seed),
        "--root",
        str(root),
        "--profile",
        profile_name,
        "--out",
        str(out),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the child's finally-blocks stop its nodes (they die with the namespace's
        # loopback anyway, but their PIDs are the child's to stop).
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    text = output.decode(errors="replace")
    if not out.exists():
        raise AssertionError(f"scenario {scenario} seed {seed} produced no result:\n{text[-4000:]}")
    data = json.loads(out.read_text())
    res = ScenarioResult(**data)
    if proc.returncode not in (0, None) and not res.message:
        res.message = text[-4000:]
    return res


def _child_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", required=True, choices=ALL_SCENARIOS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--profile", choices=("short", "soak"), default="short")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through run_scenario's finally: nodes stopped

    signal.signal(signal.SIGTERM, on_term)
    if args.scenario in PARTITION_SCENARIOS:
        # A fresh namespace has its loopback down.
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=20)
    root = args.root or Path(tempfile.mkdtemp(prefix="aspen-fault-"))
    profile = SOAK if args.profile == "soak" else SHORT
    try:
        res = run_scenario(args.scenario, args.seed, root, profile)
    except Exception as exc:
        res = ScenarioResult(args.scenario, args.seed, message=f"run failed: {type(exc).__name__}: {exc}")
    if args.out:
        args.out.write_text(json.dumps(asdict(res)))
    print(json.dumps(asdict(res)), flush=True)
    return 0 if res.linearizable or res.skipped else 1


if __name__ == "__main__":
    sys.exit(_child_main())
