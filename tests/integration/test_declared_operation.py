"""One declaration per operation: a toy primitive declared here, in the test, and nowhere else,
gets its wire variant, the node's dispatch to its layer, a client method and a CLI command.

The node runs in this process (a thread with its own event loop), because the toy layer exists
only here; it is the real `aspen.node.main.Node` with its QUIC server on loopback, Raft and WAL.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgpack
import pytest
from click.testing import CliRunner
from harness import wait_for

from aspen.api import operation
from aspen.api.codec import decode_request, encode_request
from aspen.api.errors import AspenError
from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U64, WireModel
from aspen.cli import operations as cli_operations
from aspen.cli.main import cli
from aspen.cli.output import Output
from aspen.client import SyncAspenClient
from aspen.kv.layer import KvReader, KvTxn
from aspen.layers import LAYERS
from aspen.layers.framework import Layer, check_user_key
from aspen.layers.records import dump, load
from aspen.node.config import NodeConfig
from aspen.node.main import TICKET_FILE, Node
from aspen.rpc.loop import new_event_loop

PREFIX = "__coord:toy:"


# ------------------------------------------------------------------------ the toy layer (pure) --
@dataclass(frozen=True, slots=True)
class ToyNote:
    name: str
    note: str

    def check(self) -> str | None:
        return check_user_key(PREFIX, self.name)


@dataclass(frozen=True, slots=True)
class ToyOutcome:
    is_success: bool
    note: str | None = None
    written_at_ms: int | None = None
    error: str | None = None


def _apply(txn: KvTxn, op: ToyNote, now_ms: int) -> ToyOutcome:
    txn.put(PREFIX + op.name, dump({"note": op.note, "at": now_ms}))
    return ToyOutcome(True, op.note, now_ms)


def _read(reader: KvReader, _now_ms: int, name: str) -> ToyOutcome:
    record = load(reader, PREFIX + name)
    if record is None:
        return ToyOutcome(False, error=f"no note {name!r}")
    return ToyOutcome(True, record["note"], record["at"])


TOY_LAYER: Layer[ToyNote, ToyOutcome] = Layer(
    name="toy",
    ops=(ToyNote,),
    apply=_apply,
    rejected=lambda message: ToyOutcome(False, error=message),
    prefixes=(PREFIX,),
    queries={"ToyGet": _read},
)


@pytest.fixture(scope="module")
def toy() -> Iterator[dict[str, type[WireModel]]]:
    """The toy operations' declarations: one family, one write, one read, one printer."""

    class ToyResult(WireModel):
        type: Literal["ToyResult"] = "ToyResult"
        is_success: bool
        note: str | None = None
        written_at_ms: U64 | None = None
        error: str | None = None

    family = Family("toy", "Notes by name (a toy primitive).", "toy", ToyResult)

    @family.write("put", op="ToyNote")
    class ToyPut(WireModel):
        """Store NOTE under NAME."""

        type: Literal["ToyPut"] = "ToyPut"
        name: Annotated[str, Arg()]
        note: Annotated[str, Opt(help="The note to keep.")]

    @family.read("get")
    class ToyGet(WireModel):
        """Print the note stored under NAME."""

        type: Literal["ToyGet"] = "ToyGet"
        name: Annotated[str, Arg()]

    @cli_operations.printer("toy")
    def show(request: Any, op: str, res: Any) -> Output:
        doc = {"operation": op, "name": request.name, "note": res.note, "error": res.error}
        return Output(doc, res.note or f"{op} failed: {res.error}", ok=res.is_success)

    yield {"ToyResult": ToyResult, "ToyPut": ToyPut, "ToyGet": ToyGet}
    # The declarations are process-wide; leave the registries as the other tests know them.
    for name in ("ToyPut", "ToyGet"):
        operation.OPERATIONS.pop(name)
    operation.GROUPS.pop("toy")
    cli_operations.PRINTERS.pop("toy")
    cli_operations._GROUPS.pop("toy")
    cli.commands.pop("toy", None)


@pytest.fixture(scope="module")
def toy_node(tmp_path_factory: pytest.TempPathFactory, toy: dict[str, Any]) -> Iterator[str]:
    """A one-node cluster serving every layer plus the toy one; yields its ticket."""
    data_dir: Path = tmp_path_factory.mktemp("toy-node")
    node = Node(
        NodeConfig(node_id=1, cookie="toy-test-cookie", data_dir=data_dir), layers=(*LAYERS, TOY_LAYER)
    )
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> None:
        await node.start()
        await node.raft.bootstrap()
        node.record_own_address_if_missing()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield (data_dir / TICKET_FILE).read_text()
    finally:
        asyncio.run_coroutine_threadsafe(node.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def test_the_declaration_is_a_wire_variant(toy: dict[str, Any]) -> None:
    frame = encode_request(toy["ToyPut"](name="a", note="hello"))
    assert decode_request(frame) == toy["ToyPut"](name="a", note="hello")
    bad = msgpack.packb({"v": 1, "req": {"type": "ToyPut", "name": "a"}})
    with pytest.raises(AspenError, match=r"invalid request: ToyPut\.note: Field required"):
        decode_request(bad)
    assert operation.OPERATIONS["ToyPut"].kind is operation.Kind.WRITE
    assert operation.OPERATIONS["ToyGet"].kind is operation.Kind.READ


def test_the_node_dispatches_it_and_the_client_calls_it(toy: dict[str, Any], toy_node: str) -> None:
    with SyncAspenClient(toy_node, timeout=10) as client:
        wait_for(lambda: client.health().status == "healthy", timeout=30, what="a leader")
        put = client.toy_put("greeting", note="hello")  # the flat method, derived
        assert isinstance(put, toy["ToyResult"])
        assert put.is_success and put.note == "hello"
        assert put.written_at_ms is not None and put.written_at_ms > 1_700_000_000_000  # the leader's clock
        got = client.call(toy["ToyGet"](name="greeting"))  # the generic call
        assert (got.is_success, got.note, got.written_at_ms) == (True, "hello", put.written_at_ms)
        missing = client.toy_get("nobody")
        assert (missing.is_success, missing.error) == (False, "no note 'nobody'")
        # the layer's check runs before anything is proposed: an empty name costs no log entry
        before = client.raft_metrics().last_applied_index
        assert client.toy_put("", "x").error == "key cannot be empty"
        assert client.raft_metrics().last_applied_index == before


def test_the_cli_has_its_commands(toy: dict[str, Any], toy_node: str) -> None:
    runner = CliRunner()
    put = runner.invoke(cli, ["--ticket", toy_node, "--json", "toy", "put", "motd", "--note", "be kind"])
    assert put.exit_code == 0, put.output
    assert json.loads(put.output) == {"operation": "put", "name": "motd", "note": "be kind", "error": None}
    got = runner.invoke(cli, ["--ticket", toy_node, "toy", "get", "motd"])
    assert (got.exit_code, got.output) == (0, "be kind\n")
    missing = runner.invoke(cli, ["--ticket", toy_node, "toy", "get", "nothing"])
    assert (missing.exit_code, missing.output) == (1, "get failed: no note 'nothing'\n")
    usage = runner.invoke(cli, ["--ticket", toy_node, "toy", "put", "motd"])
    assert usage.exit_code == 2 and "--note" in usage.output
    listed = runner.invoke(cli, ["toy", "--help"])
    assert "Notes by name" in listed.output and "Store NOTE under NAME." in listed.output
