"""Every `kv` command through `aspen-cli --json` against a real node."""

from __future__ import annotations

import pytest
from harness import NodeProcess, cli

pytestmark = pytest.mark.integration


def test_set_then_get_prints_the_value(node: NodeProcess) -> None:
    assert cli(node.ticket, "kv", "set", "hello", "world").stdout.strip() == "OK"
    assert cli(node.ticket, "kv", "get", "hello").stdout.strip() == "world"


def test_get_json_shape_for_present_and_missing_keys(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "a", "1")
    assert cli(node.ticket, "--json", "kv", "get", "a").json() == {
        "key": "a",
        "does_exist": True,
        "value": "1",
    }
    missing = cli(node.ticket, "kv", "get", "nope", "--json")
    assert missing.code == 0
    assert missing.json() == {"key": "nope", "does_exist": False, "value": None}
    human = cli(node.ticket, "kv", "get", "nope")
    assert human.code == 0 and human.stdout.strip() == "Key 'nope' not found"


def test_set_json_is_compact_and_reports_success(node: NodeProcess) -> None:
    res = cli(node.ticket, "--json", "kv", "set", "k", "v")
    assert res.code == 0
    assert res.stdout.strip() == '{"status":"success","key":"k"}'


def test_set_from_file_and_stdin_keeps_bytes(node: NodeProcess, tmp_path) -> None:
    blob = bytes(range(256))
    f = tmp_path / "v.bin"
    f.write_bytes(blob)
    assert cli(node.ticket, "kv", "set", "bin", "--file", str(f)).code == 0
    got = cli(node.ticket, "--json", "kv", "get", "bin").json()
    import base64

    assert base64.b64decode(got["value"]["base64"]) == blob
    assert cli(node.ticket, "kv", "get", "bin").stdout.strip() == "<binary: 256 bytes>"
    assert cli(node.ticket, "kv", "set", "piped", "-f", "-", stdin=b"from stdin").code == 0
    assert cli(node.ticket, "kv", "get", "piped").stdout.strip() == "from stdin"


def test_delete_reports_whether_the_key_existed(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "d", "x")
    res = cli(node.ticket, "--json", "kv", "delete", "d")
    assert res.code == 0 and res.json() == {"status": "success", "key": "d", "was_deleted": True}
    again = cli(node.ticket, "--json", "kv", "delete", "d")
    assert again.code == 0 and again.json()["was_deleted"] is False
    assert cli(node.ticket, "kv", "delete", "d").stdout.strip() == "Key not found"


def test_cas_create_if_absent_swap_and_conflict(node: NodeProcess) -> None:
    created = cli(node.ticket, "--json", "kv", "cas", "c", "--new-value", "v1")
    assert created.code == 0 and created.json() == {"status": "success", "key": "c", "is_success": True}
    swapped = cli(node.ticket, "--json", "kv", "cas", "c", "--expected", "v1", "--new-value", "v2")
    assert swapped.json()["is_success"] is True
    conflict = cli(node.ticket, "--json", "kv", "cas", "c", "--expected", "v1", "--new-value", "v3")
    assert conflict.code == 1
    assert conflict.json()["status"] == "conflict" and conflict.json()["actual_value"] == "v2"
    human = cli(node.ticket, "kv", "cas", "c", "--expected", "zz", "--new-value", "v3")
    assert human.code == 1 and human.stdout.strip() == "CONFLICT: value has changed"
    assert cli(node.ticket, "kv", "get", "c").stdout.strip() == "v2"


def test_cad_deletes_only_on_match(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "x", "1")
    miss = cli(node.ticket, "--json", "kv", "cad", "x", "--expected", "2")
    assert miss.code == 1 and miss.json()["status"] == "conflict"
    hit = cli(node.ticket, "--json", "kv", "cad", "x", "--expected", "1")
    assert hit.code == 0 and hit.json() == {"status": "success", "key": "x", "is_success": True}
    assert cli(node.ticket, "--json", "kv", "get", "x").json()["does_exist"] is False
    absent = cli(node.ticket, "--json", "kv", "cad", "x", "--expected", "1")
    assert absent.code == 1 and absent.json()["actual_value"] is None


def test_scan_paginates_with_tokens(node: NodeProcess) -> None:
    pairs = [f"scan:item:{i:02d}=v{i}" for i in range(25)]
    assert cli(node.ticket, "kv", "batch-write", *pairs).code == 0
    cli(node.ticket, "kv", "set", "other:1", "x")
    seen: list[str] = []
    token = None
    for _ in range(10):
        args = ["--json", "kv", "scan", "scan:item:", "--limit", "10"] + (["--token", token] if token else [])
        page = cli(node.ticket, *args).json()
        seen += [e["key"] for e in page["entries"]]
        token = page["continuation_token"]
        if token is None:
            break
    assert seen == [f"scan:item:{i:02d}" for i in range(25)]
    first = cli(node.ticket, "kv", "scan", "scan:item:", "--limit", "10")
    assert first.stdout.startswith("Found 10 key(s)")
    assert "More results available. Use --token scan:item:09" in first.stdout
    assert cli(node.ticket, "kv", "scan", "nothing-here").stdout.strip() == "No keys found"
    exact = cli(node.ticket, "--json", "kv", "scan", "scan:item:", "--limit", "25").json()
    assert exact["count"] == 25 and exact["continuation_token"] is None


def test_batch_read_is_positional(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "batch-write", "b1=one", "b3=three")
    res = cli(node.ticket, "--json", "kv", "batch-read", "b1", "b2", "b3")
    assert res.json() == {
        "count": 3,
        "results": [
            {"key": "b1", "does_exist": True, "value": "one"},
            {"key": "b2", "does_exist": False, "value": None},
            {"key": "b3", "does_exist": True, "value": "three"},
        ],
    }
    assert "b2: <not found>" in cli(node.ticket, "kv", "batch-read", "b1", "b2").stdout


def test_batch_write_shapes_and_limits(node: NodeProcess) -> None:
    ok = cli(node.ticket, "--json", "kv", "batch-write", "k1=a", "k2=b=c")
    assert ok.json() == {"is_success": True, "operations_applied": 2}
    assert cli(node.ticket, "kv", "get", "k2").stdout.strip() == "b=c"
    assert cli(node.ticket, "kv", "batch-write", "k3=x").stdout.strip() == "OK: 1 operation(s) applied"
    assert cli(node.ticket, "kv", "batch-write", "novalue").code == 2
    assert cli(node.ticket, "kv", "batch-write", "=x").code == 2
    too_many = [f"k{i}=v" for i in range(101)]
    assert cli(node.ticket, "kv", "batch-write", *too_many).code == 2


def test_global_options_work_after_the_subcommand(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "g", "1")
    res = cli(None, "kv", "get", "g", "--json", "--ticket", node.ticket, "--timeout", "5000")
    assert res.json()["value"] == "1"


def test_missing_ticket_is_a_usage_error(tmp_path) -> None:
    res = cli(None, "kv", "get", "x", cwd=tmp_path)
    assert res.code == 2
    assert "--ticket is required" in res.stderr


def test_ticket_from_environment(node: NodeProcess) -> None:
    cli(node.ticket, "kv", "set", "e", "env")
    res = cli(None, "kv", "get", "e", env={"ASPEN_TICKET": node.ticket})
    assert res.stdout.strip() == "env"
