"""The layering rule of docs/architecture.md, checked on the source: the pure core (kv, layers,
raft/core) does no I/O and reads no clock; data flows one way (cli → client → rpc → node → raft →
state machine, nothing imports back up); `aspen-cli` starts without loading the node's modules; and
no two modules import each other at module level."""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "aspen"

#: Everything around the state machine.
_SHELL = {"aspen.raft", "aspen.peer", "aspen.rpc", "aspen.node", "aspen.client", "aspen.cli"}

#: Standard modules that do I/O, read a clock or draw randomness.
IMPURE = {"asyncio", "socket", "ssl", "os", "time", "threading", "subprocess", "pathlib", "secrets"}


def _imports(package: str) -> dict[str, set[str]]:
    """Module name -> the absolute module names it imports (at any depth of the file)."""
    found: dict[str, set[str]] = {}
    base = ROOT.parent
    for path in (base / package.replace(".", "/")).rglob("*.py"):
        module = ".".join(path.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[module] = names
    return found


def _offenders(package: str, forbidden: set[str]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in _imports(package).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_the_peer_transport_shares_only_the_rpc_identity_which_is_a_leaf() -> None:
    """The peer transport (TLS over TCP) authenticates with the same node identity as the QUIC RPC,
    and nothing else of it; `aspen.rpc.identity` imports nothing of Aspen."""
    from_rpc = {n for names in _imports("aspen.peer").values() for n in names if n.startswith("aspen.rpc")}
    assert from_rpc <= {"aspen.rpc.identity"}, from_rpc
    assert [n for n in _imports("aspen.rpc")["aspen.rpc.identity"] if n.startswith("aspen")] == []


@pytest.mark.parametrize("package", ["aspen.kv", "aspen.layers", "aspen.raft.core"])
def test_the_pure_core_does_no_io_and_reads_no_clock(package: str) -> None:
    # The Raft core takes a seeded `random.Random` from its caller: it may name the type.
    forbidden = IMPURE if package == "aspen.raft.core" else IMPURE | {"random"}
    assert _offenders(package, forbidden) == []


@pytest.mark.parametrize(
    ("package", "above"),
    [
        ("aspen.kv", {"aspen.layers", *_SHELL}),
        ("aspen.layers", {"aspen.blob", *_SHELL}),
        ("aspen.raft", {"aspen.peer", "aspen.rpc", "aspen.node", "aspen.client", "aspen.cli", "aspen.blob"}),
        ("aspen.peer", {"aspen.node", "aspen.client", "aspen.cli", "aspen.blob", "aspen.kv", "aspen.layers"}),
        ("aspen.api", _SHELL),
        ("aspen.rpc", {"aspen.node", "aspen.client", "aspen.cli"}),
        ("aspen.blob", {"aspen.node", "aspen.client", "aspen.cli"}),
        ("aspen.client", {"aspen.node", "aspen.cli", "aspen.raft"}),
        ("aspen.node", {"aspen.client", "aspen.cli"}),
    ],
)
def test_nothing_imports_back_up_the_flow(package: str, above: set[str]) -> None:
    assert _offenders(package, above) == []


def test_the_cli_starts_without_the_state_machine_or_the_node() -> None:
    """Every `aspen-cli` invocation pays for its imports; it needs the wire models and the client."""
    code = (
        "import json, sys, aspen.cli.main; "
        "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules if m.startswith('aspen.')})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert loaded.isdisjoint({"kv", "layers", "raft", "node"}), loaded


def _module_level_imports() -> dict[str, set[str]]:
    """Module -> the aspen modules it imports when it is loaded: top-level statements only (an
    import in a function or under `if TYPE_CHECKING:` runs later, or never)."""
    base = ROOT.parent
    modules = {
        ".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }
    found: dict[str, set[str]] = {}
    for module, path in modules.items():
        names: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                # `from aspen.x import y` loads aspen.x.y too when y is a module
                names.update(f"{node.module}.{a.name}" for a in node.names)
        found[module] = {n for n in names if n in modules and n != module}
    return found


def test_no_module_level_import_cycles() -> None:
    graph = _module_level_imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ re-exporting its modules is not a cycle of logic: skip edges into parents.
    real = [
        c
        for c in cycles
        if not any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in itertools.pairwise(c))
    ]
    assert real == []
