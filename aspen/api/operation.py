"""One declaration per operation. A request's wire model, declared through its family, says
everything the rest of Aspen derives from it:

    counter = Family("counter", "Atomic counters.", layer="counter", result=CounterResult)

    @counter.write("incr", op="CounterAdd", fixed={"amount": 1})
    class CounterIncrement(WireModel):
        '''Add 1 to KEY; print the new value.'''   # the CLI command's help

        type: Literal["CounterIncrement"] = "CounterIncrement"
        key: Annotated[str, Arg()]

- the codec decodes a frame by its `type` tag through `OPERATIONS` (an unknown tag is an unknown
  variant), so a new declaration is a new wire variant;
- the node's dispatch (aspen.node.dispatch) builds the layer op from the request's fields (names
  match the op's, plus `fixed`), stamps it with the leader's clock and proposes it (WRITE), or
  runs the layer's query after a read barrier (READ); the layer's result becomes `result` field by
  field. Only the leader orders a WRITE, so followers forward it; a READ is served anywhere;
- the client (aspen.client.operations) gets `client.call(request)` typed by `result`, and a flat
  method (`counter_incr`: family and verb) taking the fields positionally;
- the CLI (aspen.cli.operations) gets `aspen-cli counter incr KEY`, whose arguments and options are
  the fields marked `Arg` / `Opt`, printed by the family's printer;
- docs/operations.md's table (aspen.api.optable), checked current by a test.

Only what is genuinely special is written by hand: a node handler registered under the request's
name instead of a layer (blocking waits, cluster administration), client handles, human printers.

This module is a leaf of the wire schema: it imports nothing of the node, so `aspen-cli` can use
the declarations without loading the state machine.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic.fields import FieldInfo

from aspen.api.wire import WireModel

W = TypeVar("W", bound=WireModel)


class Kind(enum.Enum):
    #: Changes nothing: served on any node (after a ReadIndex barrier unless stale), retried anywhere.
    READ = "read"
    #: Ordered by the leader (followers forward it), with the leader's clock in the command; a
    #: client never retries it after an ambiguous failure.
    WRITE = "write"
    #: A WRITE that may wait in the node (lock, semaphore, queue, barrier) for up to its
    #: `timeout_ms` field; its layer says how it waits (`aspen.layers.framework.Wait`). The client
    #: stretches the request's budget over the wait and re-issues it with the time left while
    #: its result's `status` is `timed_out`.
    BLOCKING = "blocking"

    @property
    def is_read(self) -> bool:
        return self is Kind.READ


@dataclass(frozen=True, slots=True)
class Arg:
    """The field is a positional CLI argument (named by the field, upper-case in the help)."""

    #: The argument's name in the CLI when it differs from the field's.
    name: str | None = None


#: An `Opt` bound the CLI leaves open (its range shows one side only, as a hand-written option's may;
#: the wire's bound still applies to the request).
UNCHECKED: Final = math.inf


@dataclass(frozen=True, slots=True)
class Opt:
    """The field is a CLI option: `flag` (default `--field-name`) with its help."""

    flag: str | None = None
    help: str | None = None
    #: The option's default when it differs from the wire field's (a CLI convenience); None = same.
    default: Any = None
    #: The CLI asks for it although the wire field has a default.
    required: bool = False
    #: Tighter bounds for the CLI than the wire type's (so click refuses them as a usage error).
    low: int | float | None = None
    high: int | float | None = None
    #: The name of the CLI parser (aspen.cli.operations) that turns the option's text into the
    #: field's value, for a value the command line cannot spell field by field (a JSON list).
    parser: str | None = None
    #: The values the CLI accepts (any other is a usage error) when the wire takes any string.
    choices: tuple[str, ...] | None = None
    #: The click parameter's name (and so its environment variable) when it is not the flag's.
    dest: str | None = None


@dataclass(frozen=True, slots=True)
class Verb:
    """`aspen-cli <group> <name>`; `help` is the command's help, `printer` the printer's name in the
    CLI (default: the group's); `label` the operation name printers show (default: `name` with
    dashes as underscores)."""

    group: str
    name: str
    help: str
    printer: str | None = None
    label: str | None = None
    context_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def operation(self) -> str:
        return self.label or self.name.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Param:
    """One field of a request as the CLI and the flat client method see it."""

    name: str
    info: FieldInfo
    cli: Arg | Opt | None

    @property
    def required(self) -> bool:
        return self.info.is_required()

    def base(self) -> tuple[Any, int | None, int | None]:
        """The field's type without `| None` and its integer bounds (low, high), None if unbounded."""
        hint, marks = self.info.annotation, list(self.info.metadata)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extra = typing.get_args(hint)
            marks += [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
        low = next((m.ge for m in marks if hasattr(m, "ge")), None)
        high = next((m.le for m in marks if hasattr(m, "le")), None)
        return hint, low, high


@dataclass(frozen=True, slots=True)
class OpSpec:
    request: type[WireModel]
    kind: Kind
    result: type[WireModel]
    #: The layer implementing it (by its persistent name), or None for a hand-written node handler.
    layer: str | None
    #: The layer's op (WRITE) or query (READ) name; default: the request's name.
    layer_op: str
    #: Arguments of the layer op the request does not carry (CounterIncrement is CounterAdd of 1).
    fixed: Mapping[str, Any]
    #: The flat client method's name, or None.
    client: str | None
    cli: Verb | None
    #: Fields of the layer's result the wire result leaves at their default (the original's shape).
    omit: tuple[str, ...] = ()
    #: BLOCKING: the request's field that says how long it may wait, in ms.
    wait_field: str = "timeout_ms"

    @property
    def name(self) -> str:
        default: str = self.request.model_fields["type"].default
        return default

    def params(self) -> Iterator[Param]:
        """The request's fields in declaration order, without the `type` tag."""
        for name, info in self.request.model_fields.items():
            if name == "type":
                continue
            marks = [m for m in info.metadata if isinstance(m, Arg | Opt)]
            yield Param(name, info, marks[0] if marks else None)


#: Every declared operation by its wire name. Declaring one (importing its module) registers it.
OPERATIONS: dict[str, OpSpec] = {}


def operation(
    kind: Kind,
    *,
    result: type[WireModel],
    layer: str | None = None,
    layer_op: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    client: str | None = None,
    cli: Verb | None = None,
    omit: tuple[str, ...] = (),
    wait_field: str = "timeout_ms",
) -> Any:
    """Declare the decorated request model as an operation (see the module docstring)."""

    def register(request: type[W]) -> type[W]:
        name = request.model_fields["type"].default
        if not isinstance(name, str) or name in OPERATIONS:
            raise TypeError(f"{request.__name__}: missing or duplicate operation name {name!r}")
        OPERATIONS[name] = OpSpec(
            request=request,
            kind=kind,
            result=result,
            layer=layer,
            layer_op=layer_op or name,
            fixed=dict(fixed or {}),
            client=client,
            cli=cli,
            omit=omit,
            wait_field=wait_field,
        )
        return request

    return register


#: CLI groups by name, with their help (`aspen-cli <group> --help`).
GROUPS: dict[str, str] = {}


def group(name: str, help: str) -> None:
    """Declare a CLI group the operations' verbs go into."""
    GROUPS[name] = help


@dataclass(frozen=True, slots=True)
class Family:
    """The operations of one primitive: their CLI group, layer and usual result, declared once."""

    group: str
    help: str
    layer: str | None = None
    result: type[WireModel] | None = None

    def __post_init__(self) -> None:
        group(self.group, self.help)

    def declare(
        self,
        kind: Kind,
        verb: str | None,
        *,
        result: type[WireModel] | None = None,
        op: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        client: str | None = None,
        printer: str | None = None,
        label: str | None = None,
        settings: Mapping[str, Any] | None = None,
        omit: tuple[str, ...] = (),
        wait_field: str = "timeout_ms",
    ) -> Any:
        """Declare the decorated request; `verb` None: no CLI command. The CLI help is the
        request's docstring; the flat client method is `<group>_<verb>` unless `client` says."""
        answer = result or self.result
        if answer is None:
            raise TypeError(f"{self.group} {verb}: no result model")

        def register(request: type[W]) -> type[W]:
            cli = None
            if verb is not None:
                help = " ".join((request.__doc__ or "").split("\n\n")[0].split())
                cli = Verb(self.group, verb, help, printer, label, dict(settings or {}))
            method = client or (f"{self.group}_{verb.replace('-', '_')}" if verb else None)
            declare = operation(
                kind,
                result=answer,
                layer=self.layer,
                layer_op=op,
                fixed=fixed,
                client=method,
                cli=cli,
                omit=omit,
                wait_field=wait_field,
            )
            return declare(request)  # type: ignore[no-any-return]

        return register

    def read(self, verb: str | None, **how: Any) -> Any:
        return self.declare(Kind.READ, verb, **how)

    def write(self, verb: str | None, **how: Any) -> Any:
        return self.declare(Kind.WRITE, verb, **how)

    def blocking(self, verb: str | None, **how: Any) -> Any:
        return self.declare(Kind.BLOCKING, verb, **how)


def spec_of(name: str) -> OpSpec | None:
    return OPERATIONS.get(name)


def result_type(tag: str) -> type[WireModel] | None:
    """The declared result model whose `type` tag is `tag`, or None."""
    for spec in OPERATIONS.values():
        if spec.result.model_fields["type"].default == tag:
            return spec.result
    return None


def names(*kinds: Kind) -> frozenset[str]:
    """The declared operations of these kinds."""
    return frozenset(n for n, s in OPERATIONS.items() if s.kind in kinds)


__all__ = [
    "GROUPS",
    "OPERATIONS",
    "UNCHECKED",
    "Arg",
    "Family",
    "Kind",
    "OpSpec",
    "Opt",
    "Param",
    "Verb",
    "group",
    "names",
    "operation",
    "result_type",
    "spec_of",
]
