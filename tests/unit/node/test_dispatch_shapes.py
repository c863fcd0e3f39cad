"""The declared-operation mechanism for requests whose shape is not one flat op (the queue's): a
field the node draws (`drawn()`), a layer builder, nested request models in and nested result
models out, and the CLI's argument names, CLI-only bounds and requirements, option parsers and
bytes fields. A toy layer declared here, removed from the registries afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import click
import pytest

from aspen.api import operation
from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import U32, U64, WireModel
from aspen.cli import main as _main  # noqa: F401  (every family's printers, for declared_groups)
from aspen.cli import operations as cli_operations
from aspen.cli.output import Output
from aspen.kv import KvStateMachine, KvView
from aspen.kv.layer import KvReader, KvTxn
from aspen.layers.framework import Layer, check_user_key, drawn
from aspen.layers.records import dump, load
from aspen.node.dispatch import Dispatch
from aspen.node.proposer import op_size

PREFIX = "__coord:shape:"


# ----------------------------------------------------------------------------------- the layer --
@dataclass(frozen=True, slots=True)
class ShapeTag:
    name: str
    tags: tuple[tuple[str, int], ...]
    nonce: int = drawn()

    def check(self) -> str | None:
        return check_user_key(PREFIX, self.name)


@dataclass(frozen=True, slots=True)
class ShapeEntry:
    tag: str
    weight: int
    hidden: str = "not on the wire"


@dataclass(frozen=True, slots=True)
class ShapeOutcome:
    is_success: bool
    entries: tuple[ShapeEntry, ...] = ()
    nonce: int | None = None
    error: str | None = None


def _apply(txn: KvTxn, op: ShapeTag, now_ms: int) -> ShapeOutcome:
    txn.put(PREFIX + op.name, dump({"tags": [list(t) for t in op.tags], "nonce": op.nonce}))
    return ShapeOutcome(True, tuple(ShapeEntry(t, w) for t, w in op.tags), op.nonce)


def _list(reader: KvReader, now_ms: int, name: str, limit: int) -> ShapeOutcome:
    record = load(reader, PREFIX + name) or {"tags": []}
    return ShapeOutcome(True, tuple(ShapeEntry(t, w) for t, w in record["tags"][:limit]))


def _one(name: str, tag: bytes, weight: int | None) -> ShapeTag:
    return ShapeTag(name, ((tag.decode(), weight or 1),), 0)


LAYER: Layer[ShapeTag, ShapeOutcome] = Layer(
    name="shape",
    ops=(ShapeTag,),
    apply=_apply,
    rejected=lambda message: ShapeOutcome(False, error=message),
    prefixes=(PREFIX,),
    queries={"ShapeList": _list},
    builders={"ShapeTagOne": _one},
)


# ----------------------------------------------------------------------------- the declaration --
class ShapeEntryModel(WireModel):
    tag: str
    weight: U64


class ShapeTagItem(WireModel):
    tag: str
    weight: U64


class ShapeResult(WireModel):
    type: Literal["ShapeResult"] = "ShapeResult"
    is_success: bool
    entries: list[ShapeEntryModel] = []
    nonce: U64 | None = None
    error: str | None = None


@pytest.fixture(scope="module")
def declared() -> Iterator[dict[str, type[WireModel]]]:
    shape = Family("shape", "Shapes.", "shape", ShapeResult)

    @shape.write("tag", op="ShapeTag")
    class ShapeTagMany(WireModel):
        """Tag NAME."""

        type: Literal["ShapeTagMany"] = "ShapeTagMany"
        name: Annotated[str, Arg("thing")]
        tags: Annotated[list[ShapeTagItem], Opt("--tags", parser="shape-tags")]

    @shape.write("tag-one", op="ShapeTagOne")
    class ShapeTagOne(WireModel):
        """Tag NAME with TAG."""

        type: Literal["ShapeTagOne"] = "ShapeTagOne"
        name: Annotated[str, Arg("thing")]
        tag: Annotated[bytes, Arg()]
        weight: Annotated[U64 | None, Opt("--weight", low=1)] = None

    @shape.read("list")
    class ShapeList(WireModel):
        """List NAME's tags."""

        type: Literal["ShapeList"] = "ShapeList"
        name: Annotated[str, Arg("thing")]
        limit: Annotated[U32, Opt("--max", required=True)] = 10

    @cli_operations.printer("shape")
    def show(request: Any, operation: str, res: Any) -> Output:
        return Output({"entries": res.entries}, "")

    @cli_operations.parser("shape-tags")
    def tags(raw: str) -> list[ShapeTagItem]:
        if not raw:
            raise click.BadParameter("no tags")
        return [ShapeTagItem(tag=t, weight=1) for t in raw.split(",")]

    try:
        yield {"many": ShapeTagMany, "one": ShapeTagOne, "list": ShapeList}
    finally:
        for name in ("ShapeTagMany", "ShapeTagOne", "ShapeList"):
            operation.OPERATIONS.pop(name)
        operation.GROUPS.pop("shape")
        cli_operations.PRINTERS.pop("shape")
        cli_operations.PARSERS.pop("shape-tags")
        cli_operations._GROUPS.pop("shape", None)


class _Proposer:
    """Applies each proposal at once, recording the op and its size estimate."""

    def __init__(self) -> None:
        self.kv = KvStateMachine(layers={"shape": LAYER})
        self.proposed: list[tuple[Any, int | None]] = []

    async def propose_op(self, layer: Layer[Any, Any], op: Any) -> Any:
        self.proposed.append((op, op_size(op)))  # the size the real Proposer proposes it with
        error = op.check()
        return layer.rejected(error) if error else self.kv.apply(len(self.proposed), layer.command(op, 7))

    async def barrier(self, stale: bool = False) -> None:
        return None

    def view(self) -> KvView:
        return KvView(self.kv)

    def now_ms(self) -> int:
        return 7


def _run(dispatch: Dispatch, request: WireModel) -> Any:
    handler = dispatch.handler(request.type)  # type: ignore[attr-defined]
    assert handler is not None
    return asyncio.run(handler(request))


def test_nested_models_travel_as_tuples_and_come_back_as_the_declared_models(
    declared: dict[str, type[WireModel]],
) -> None:
    proposer = _Proposer()
    dispatch = Dispatch(proposer, {"shape": LAYER})  # type: ignore[arg-type]
    items = [ShapeTagItem(tag="a", weight=2), ShapeTagItem(tag="b", weight=3)]
    res = _run(dispatch, declared["many"](name="n", tags=items))
    ((op, size),) = proposer.proposed
    assert op.tags == (("a", 2), ("b", 3)) and size == len("n") + len("a") + len("b")
    # The result's nested entries carry only the wire model's fields (`hidden` is dropped).
    assert isinstance(res, ShapeResult) and res.is_success
    assert res.entries == [ShapeEntryModel(tag="a", weight=2), ShapeEntryModel(tag="b", weight=3)]
    listed = _run(dispatch, declared["list"](name="n"))
    assert [e.tag for e in listed.entries] == ["a", "b"]


def test_drawn_fields_are_drawn_per_request_and_builders_shape_the_op(
    declared: dict[str, type[WireModel]],
) -> None:
    proposer = _Proposer()
    dispatch = Dispatch(proposer, {"shape": LAYER})  # type: ignore[arg-type]
    nonces = {_run(dispatch, declared["many"](name="n", tags=[])).nonce for _ in range(3)}
    assert len(nonces) == 3 and all(0 <= n < 2**63 for n in nonces)
    res = _run(dispatch, declared["one"](name="m", tag=b"x"))
    assert proposer.proposed[-1][0] == ShapeTag("m", (("x", 1),), 0)
    assert res.nonce == 0  # a builder's op is proposed as built


def test_cli_names_bounds_requirements_parsers_and_bytes(declared: dict[str, type[WireModel]]) -> None:
    groups = {g.name: g for g in cli_operations.declared_groups()}
    one, many, listing = (groups["shape"].commands[v] for v in ("tag-one", "tag", "list"))
    ctx = one.make_context("tag-one", ["n", "text", "--weight", "2", "--ticket", "t"])
    assert (ctx.params["thing"], ctx.params["tag"], ctx.params["weight"]) == ("n", "text", 2)
    # bytes fields are text on the command line, UTF-8 in the request
    spec = operation.OPERATIONS["ShapeTagOne"]
    tag = next(p for p in spec.params() if p.name == "tag")
    assert cli_operations._value(tag, "text") == b"text"
    with pytest.raises(click.BadParameter):  # the CLI's own lower bound
        one.make_context("tag-one", ["n", "t", "--weight", "0"])
    with pytest.raises(click.MissingParameter):  # required on the CLI despite the wire default
        listing.make_context("list", ["n"])
    assert many.make_context("tag", ["n", "--tags", "a,b"]).params["tags"] == [
        ShapeTagItem(tag="a", weight=1),
        ShapeTagItem(tag="b", weight=1),
    ]
    with pytest.raises(click.BadParameter, match="no tags"):
        many.make_context("tag", ["n", "--tags", ""])
