"""`aspen-cli` commands derived from the declared operations (aspen.api.operation): one click
command per declaration with a CLI verb, its arguments and options built from the request's
fields, its output from the printer the declaration names (by default its group's).

A printer is `(request, operation, result) -> Output`; `operation` is the verb with underscores
(`signed_get`), the name JSON documents carry. Hand-written commands (those that are more than one
request) are added to the same groups through `group_of`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

import click

from aspen.api.operation import GROUPS, OPERATIONS, UNCHECKED, Arg, OpSpec, Opt, Param
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.client.client import AspenClient

Printer = Callable[[Any, str, Any], Output]

#: Printers by name (a group's name is its default printer).
PRINTERS: dict[str, Printer] = {}
#: Option parsers by name (`Opt(parser=...)`): `(text) -> field value`, raising `click.BadParameter`.
PARSERS: dict[str, click.ParamType[Any]] = {}
_GROUPS: dict[str, click.Group] = {}


def printer(name: str) -> Callable[[Printer], Printer]:
    """Register the decorated function as the printer `name`."""

    def register(fn: Printer) -> Printer:
        PRINTERS[name] = fn
        return fn

    return register


def parser(name: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Register the decorated function as the option parser `name`."""

    def register(fn: Callable[[str], Any]) -> Callable[[str], Any]:
        PARSERS[name] = click.types.FuncParamType(fn)
        PARSERS[name].name = "text"  # the help's metavar, as for any text option
        return fn

    return register


def group_of(name: str) -> click.Group:
    """The click group `aspen-cli <name>`, created on first use with its declared help."""
    found = _GROUPS.get(name)
    if found is None:
        found = _GROUPS[name] = click.Group(name, help=GROUPS.get(name))
    return found


#: A request's `timeout_ms` is how long a BLOCKING command waits: its `--timeout` replaces the global
#: per-request one on that command (the RPC budget is then given before the group:
#: `aspen-cli --timeout 60000 lock acquire …`), under a name the global one does not take.
_WAIT = "timeout_ms"
_WAIT_DEST = "wait_ms"


def _click_type(param: Param) -> tuple[Any, bool]:
    """(click type, is-a-list) of a field from its annotation and bounds."""
    hint, low, high = param.base()
    if isinstance(param.cli, Opt) and param.cli.parser is not None:
        return PARSERS[param.cli.parser], False
    if isinstance(param.cli, Opt) and param.cli.choices is not None:
        return click.Choice(param.cli.choices), False
    if typing.get_origin(hint) is list:
        item = type(param.info)(annotation=typing.get_args(hint)[0])
        return _click_type(Param(param.name, item, None))[0], True
    if hint is int:
        if isinstance(param.cli, Opt):  # UNCHECKED leaves that side to the wire's validation
            low = low if param.cli.low is None else None if param.cli.low == UNCHECKED else int(param.cli.low)
            high = (
                high
                if param.cli.high is None
                else None
                if param.cli.high == UNCHECKED
                else int(param.cli.high)
            )
        return click.IntRange(min=low, max=high), False
    # bytes are typed as text (UTF-8 encoded when the request is built)
    return {str: click.STRING, bool: click.BOOL, float: click.FLOAT}.get(hint, click.STRING), False


def _cli_name(param: Param) -> str:
    """The click parameter's name: the argument's, or the option's flag as an identifier (so the
    option's environment variable is named by its flag)."""
    if isinstance(param.cli, Arg):
        return param.cli.name or param.name
    assert isinstance(param.cli, Opt)
    if param.name == _WAIT:
        return _WAIT_DEST
    return param.cli.dest or (param.cli.flag or param.name).lstrip("-").replace("-", "_")


def _click_param(param: Param) -> click.Parameter:
    ctype, many = _click_type(param)
    default = None if param.required else param.info.get_default(call_default_factory=True)
    name = _cli_name(param)
    if isinstance(param.cli, Arg):
        extra: dict[str, Any] = {} if param.required or many else {"default": default}
        return click.Argument([name], type=ctype, required=param.required, nargs=-1 if many else 1, **extra)
    assert isinstance(param.cli, Opt)
    if param.cli.default is not None:
        default = param.cli.default
    flag = param.cli.flag or "--" + param.name.replace("_", "-")
    if ctype is click.BOOL:
        return click.Option([flag, name], is_flag=True, default=bool(default), help=param.cli.help)
    required = param.cli.required or (param.required and param.cli.default is None)
    # No `default` at all for a required option: click counts an explicit None as a given value.
    extra = {} if required else {"default": default}
    return click.Option(
        [flag, name],
        type=ctype,
        required=required,
        multiple=many,
        show_default=default not in (None, [], ()),
        help=param.cli.help,
        **extra,
    )


def _value(param: Param, value: Any) -> Any:
    """A click value as the request's field: tuples as lists, text for a bytes field as UTF-8."""
    if isinstance(value, tuple):
        return [_value(param, v) for v in value]
    return value.encode() if isinstance(value, str) and param.base()[0] is bytes else value


def click_params(spec: OpSpec) -> list[click.Parameter]:
    """The command's own parameters: one per field marked `Arg` / `Opt`, in declaration order."""
    return [_click_param(p) for p in spec.params() if p.cli is not None]


def request_of(spec: OpSpec, values: Mapping[str, Any]) -> Any:
    """The request from the values click parsed for its command (by parameter name)."""
    params = (p for p in spec.params() if p.cli is not None)
    return spec.request(**{p.name: _value(p, values[_cli_name(p)]) for p in params})


def _build(spec: OpSpec) -> click.Command:
    verb = spec.cli
    assert verb is not None
    params = [p for p in spec.params() if p.cli is not None]
    missing = [p.name for p in spec.params() if p.cli is None and p.required]
    if missing:
        raise TypeError(f"{spec.name}: required fields {missing} have no Arg/Opt for the CLI")
    show = PRINTERS.get(verb.printer or verb.group)
    if show is None:
        raise TypeError(f"{spec.name}: no printer {verb.printer or verb.group!r}")

    async def run(client: AspenClient, **values: Any) -> Output:
        request = request_of(spec, values)
        return show(request, verb.operation, await client.call(request))

    run.__doc__ = verb.help
    cmd = command(
        group_of(verb.group), verb.name, help=verb.help, context_settings=dict(verb.context_settings)
    )(run)
    if any(p.name == _WAIT for p in params):
        cmd.params = [p for p in cmd.params if p.name != _WAIT]
    cmd.params.extend(click_params(spec))
    return cmd


def declared_groups() -> list[click.Group]:
    """Every group, with a command for each declared operation that has a CLI verb."""
    for spec in OPERATIONS.values():
        verb = spec.cli
        if verb is not None and verb.name not in group_of(verb.group).commands:
            _build(spec)
    return list(_GROUPS.values())


__all__ = [
    "PARSERS",
    "PRINTERS",
    "click_params",
    "declared_groups",
    "group_of",
    "parser",
    "printer",
    "request_of",
]
