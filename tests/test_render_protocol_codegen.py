"""The committed generated code matches the .proto, and the CLI's cheap paths behave."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from unreal_bridge.protos import generate
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb


def test_committed_generated_code_is_up_to_date_with_the_proto():
    stale, _cosmetic = generate.stale_files()
    assert stale == [], f"generated protocol code is out of date: {stale}; run `make proto`"


def test_stale_check_notices_an_edited_proto(tmp_path, monkeypatch):
    """The check is not vacuous: a proto with one more field is reported stale."""
    source = generate.PROTO_ROOT / generate.PROTO_FILES[0]
    edited_root = tmp_path / "protos"
    edited = edited_root / generate.PROTO_FILES[0]
    edited.parent.mkdir(parents=True)
    edited.write_text(source.read_text().replace("message CloseSessionResponse {}", "message CloseSessionResponse { bool closed = 1; }"))
    for relative in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
        committed = source.with_name("render" + relative)
        (edited.parent / committed.name).write_bytes(committed.read_bytes())
    for folder in (edited.parent, edited.parent.parent, edited.parent.parent.parent):
        (folder / "__init__.py").write_text(generate.INIT_DOC)
    monkeypatch.setattr(generate, "PROTO_ROOT", edited_root)
    stale, _ = generate.stale_files()
    assert "worldloom/render/v1/render_pb2.py" in stale


def test_package_carries_the_major_version():
    assert pb.DESCRIPTOR.package == "worldloom.render.v1"
    assert set(pb.DESCRIPTOR.services_by_name["RenderService"].methods_by_name) == {
        "GetServerInfo", "OpenSession", "Render", "CloseSession",
    }


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "render-server", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(60)
def test_cli_refuses_non_loopback_without_token():
    result = _cli("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: refusing to bind non-loopback address '0.0.0.0' without authentication; "
        "pass --auth-token TOKEN (and preferably --tls-cert/--tls-key) or bind --host 127.0.0.1"
    ]


@pytest.mark.timeout(60)
def test_cli_check_subcommand_is_wired():
    if importlib.util.find_spec("unreal_bridge.conformance") is None:
        result = _cli("check", "127.0.0.1:1")
        assert result.returncode == 2
        assert "needs unreal_bridge.conformance.cli:check" in result.stderr
    else:
        result = _cli("check", "--help")
        assert result.returncode == 0, result.stderr


def test_cli_check_says_so_when_the_conformance_suite_is_absent(monkeypatch):
    from click.testing import CliRunner

    from contract.errors import UserError
    from unreal_bridge import cli

    monkeypatch.setattr(cli._RenderServerGroup, "lazy", {"check": ("unreal_bridge.no_such_conformance", "check")})
    result = CliRunner().invoke(cli.render_server, ["check", "127.0.0.1:1"])
    assert isinstance(result.exception, UserError)
    assert "needs unreal_bridge.no_such_conformance:check, which is not available" in result.exception.one_line()
