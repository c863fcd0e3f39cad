"""How a declared request's fields become CLI parameters (aspen.cli.operations), on the service
registry's declarations, which use every special mark: an argument named apart from its field,
comma-separated lists, a flag (and environment variable) named apart from its field, narrower
bounds than the wire's, a choice, a bounded integer inside an optional."""

from __future__ import annotations

from typing import Any

import click
import pytest

from aspen.api import registry as w
from aspen.api.operation import OPERATIONS
from aspen.cli import service as _service  # noqa: F401  (registers the tags parser)
from aspen.cli.operations import click_params, request_of


def parse(name: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """The request `aspen-cli service <verb> ARGS` would send (environment variables under X_)."""
    spec = OPERATIONS[name]
    cmd = click.Command("verb", params=click_params(spec), callback=lambda **values: request_of(spec, values))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        return cmd.main(list(args), standalone_mode=False, auto_envvar_prefix="X")


def test_defaults_are_the_wire_defaults() -> None:
    assert parse("ServiceRegister", "api", "a1", "h:1") == w.ServiceRegister(
        service_name="api", instance_id="a1", address="h:1"
    )
    assert parse("ServiceList") == w.ServiceList()
    assert parse("ServiceUpdateMetadata", "s", "i", "--fencing-token", "3") == w.ServiceUpdateMetadata(
        service_name="s", instance_id="i", fencing_token=3
    )


def test_flags_lists_and_environment() -> None:
    req = parse(
        "ServiceRegister", "api", "a1", "h:1", "--svc-version", "2", "--tags", " eu,,gpu ", "--ttl", "9"
    )
    assert (req.version, req.tags, req.ttl_ms) == ("2", ["eu", "gpu"], 9)
    assert parse("ServiceRegister", "api", "a1", "h:1", "--tags", "").tags == []
    assert parse("ServiceUpdateMetadata", "s", "i", "--fencing-token", "3", "--tags", "").tags == []
    # The option's environment variable follows its flag, not the field's name.
    env = {"X_SVC_VERSION": "7", "X_TTL": "5", "X_TAGS": "a,b"}
    req = parse("ServiceRegister", "api", "a1", "h:1", env=env)
    assert (req.version, req.ttl_ms, req.tags) == ("7", 5, ["a", "b"])


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("ServiceRegister", ["api", "a1", "h:1", "--ttl", "0"]),  # --ttl: x>=1 (the wire takes 0)
        ("ServiceHeartbeat", ["s", "i", "--fencing-token", "0"]),
        ("ServiceDiscover", ["s", "--limit", "1001"]),
        ("ServiceUpdateHealth", ["s", "i", "--fencing-token", "1", "--status", "sick"]),
        ("ServiceUpdateMetadata", ["s", "i", "--fencing-token", "1", "--weight", "-1"]),  # u32 | None
        ("ServiceRegister", ["api", "a1"]),
    ],
)
def test_narrower_cli_bounds_and_choices_are_usage_errors(name: str, args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        parse(name, *args)


def test_arguments_show_their_cli_names() -> None:
    spec = OPERATIONS["ServiceRegister"]
    cmd = click.Command("register", params=click_params(spec))
    usage = cmd.get_usage(click.Context(cmd))
    assert usage.endswith("SERVICE INSTANCE ADDRESS")
    list_cmd = click.Command("list", params=click_params(OPERATIONS["ServiceList"]))
    assert list_cmd.get_usage(click.Context(list_cmd)).endswith("[PREFIX]")
