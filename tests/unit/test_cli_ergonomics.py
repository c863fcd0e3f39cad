"""aspen-cli ergonomics without a cluster: shell completion, options from ASPEN_* variables, `--json`
on every command, and the per-invocation request id that travels in the request envelope."""

from __future__ import annotations

import click
import msgpack
import pytest
from click.testing import CliRunner

from aspen.api import messages as m
from aspen.api.codec import decode_envelope, decode_envelope_rid, encode_request
from aspen.api.errors import InvalidRequestError
from aspen.cli.context import Settings
from aspen.cli.main import cli


def leaf_commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            if cmd.invoke_without_command:  # a group that also runs by itself (`cluster snapshot`)
                found.append(((*path, name), cmd))
            found += leaf_commands(cmd, (*path, name))
        else:
            found.append(((*path, name), cmd))
    return found


def run(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), obj=Settings(), env=env, catch_exceptions=False)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_that_calls_back_with_the_complete_variable(shell: str) -> None:
    res = run("completion", shell)
    assert res.exit_code == 0
    assert "_ASPEN_CLI_COMPLETE" in res.output
    as_json = run("--json", "completion", shell)
    assert '"shell": "' + shell + '"' in as_json.output


def test_completion_refuses_an_unknown_shell() -> None:
    assert run("completion", "tcsh").exit_code == 2


def test_every_command_accepts_json() -> None:
    commands = leaf_commands(cli)
    assert {("kv", "get"), ("cluster", "snapshot", "save"), ("cluster", "snapshot", "trigger")} <= {
        p for p, _ in commands
    }
    missing = [" ".join(p) for p, cmd in commands if "as_json" not in {param.name for param in cmd.params}]
    assert missing == []


def test_global_options_come_from_aspen_variables_and_explicit_options_win(tmp_path: object) -> None:
    # No cluster is needed to see where the settings came from: `completion` reports JSON mode.
    assert run("completion", "bash", env={"ASPEN_JSON": "1"}).output.startswith("{")
    assert not run("completion", "bash", env={"ASPEN_JSON": "0"}).output.startswith("{")
    # A missing ticket is a usage error (exit 2) that names the variable.
    res = CliRunner().invoke(cli, ["kv", "get", "k"], obj=Settings(), env={"ASPEN_TICKET": ""})
    assert res.exit_code == 2 and "ASPEN_TICKET" in res.output


def test_command_options_have_automatic_aspen_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASPEN_KV_SCAN_LIMIT", "50")
    kv = cli.commands["kv"]
    assert isinstance(kv, click.Group)
    root = click.Context(cli, info_name="aspen-cli", auto_envvar_prefix="ASPEN", obj=Settings())
    group = click.Context(kv, info_name="kv", parent=root)
    scan = kv.commands["scan"].make_context("scan", ["user:"], parent=group)
    assert scan.params["limit"] == 50
    explicit = kv.commands["scan"].make_context("scan", ["user:", "--limit", "7"], parent=group)
    assert explicit.params["limit"] == 7


def test_each_invocation_has_its_own_short_request_id() -> None:
    a, b = Settings(), Settings()
    assert a.request_id != b.request_id
    assert 0 < len(a.request_id) <= 64 and a.request_id.isalnum()


def test_the_request_id_travels_in_the_envelope() -> None:
    frame = encode_request(m.Ping(), rid="3f9c0a1be4d27785")
    assert msgpack.unpackb(frame)["rid"] == "3f9c0a1be4d27785"
    request, hops, rid = decode_envelope_rid(frame)
    assert (request, hops, rid) == (m.Ping(), 0, "3f9c0a1be4d27785")
    # Optional: old clients send none, and the two-value decoder still works.
    assert decode_envelope_rid(encode_request(m.Ping()))[2] is None
    assert decode_envelope(frame) == (m.Ping(), 0)


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "new\nline", "é", 42, b"bytes"])
def test_a_malformed_request_id_is_an_invalid_request(bad: object) -> None:
    frame = msgpack.packb({"v": 1, "req": {"type": "Ping"}, "rid": bad}, use_bin_type=True)
    with pytest.raises(InvalidRequestError):
        decode_envelope_rid(frame)
