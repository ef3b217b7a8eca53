"""The conformance suite: passes against the real procedural server, fails naming the broken rule
against deliberately broken servers (small wrappers around the working procedural backend and
the generic servicer, each breaking exactly one promise of worldloom.render.v1).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from unreal_bridge.conformance import BUILTIN_MANIFEST, run_conformance
from unreal_bridge.conformance.rules import RULE_NAMES, canonical_sha256
from unreal_bridge.launch import ProceduralServer
from unreal_bridge.procedural import ProceduralBackend
from unreal_bridge.server import RenderServer, RenderServicer, ServerConfig


def _failed(report) -> dict[str, str]:
    return {result.name: result.message for result in report.failed}


# ------------------------------------------------------------------------------ the reference server


@pytest.fixture(scope="module")
def procedural_server():
    with ProceduralServer() as server:
        yield server


@pytest.mark.timeout(120)
def test_procedural_server_passes_every_rule(procedural_server):
    report = run_conformance(procedural_server.address)
    assert report.passed, _failed(report)
    assert [result.name for result in report.results] == RULE_NAMES
    # It advertises determinism, so the byte-identity rules really ran.
    assert report.result("determinism").status == "pass"
    assert "bytes" in report.result("resume").message


@pytest.mark.timeout(120)
def test_cli_check_exits_zero_and_writes_a_report(procedural_server, tmp_path):
    from pipeline.cli import cli

    report_path = tmp_path / "check.json"
    result = CliRunner().invoke(
        cli, ["render-server", "check", procedural_server.address, "--rule", "server_info", "--rule", "health",
              "--json-report", str(report_path)],
    )
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "2 passed" in result.output
    saved = json.loads(report_path.read_text())
    assert saved["passed"] and [rule["name"] for rule in saved["rules"]] == ["server_info", "health"]


def test_cli_check_of_an_unreachable_server_names_the_rule():
    from pipeline.cli import cli

    result = CliRunner().invoke(cli, ["render-server", "check", "127.0.0.1:1", "--rule", "server_info", "--connect-timeout", "1"])
    assert result.exit_code == 1
    assert "server_info" in result.output and "could not connect" in result.output


def test_cli_check_rejects_a_bad_address_and_unknown_rules():
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["render-server", "check", "not-an-address"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["render-server", "check", "127.0.0.1:1", "--rule", "no_such_rule"])
    assert exit_info.value.code == 2


def test_canonical_hash_ignores_the_sha256_field_and_key_order():
    clip = {"b": 1, "a": [1.5, {"y": 2, "x": 1}], "sha256": "whatever"}
    reordered = {"a": [1.5, {"x": 1, "y": 2}], "b": 1}
    assert canonical_sha256(clip) == canonical_sha256(reordered)
    assert canonical_sha256(clip) != canonical_sha256({**reordered, "b": 2})


# ------------------------------------------------------------------------------ broken servers


class WrappedBackend:
    """Delegates to a working ProceduralBackend; subclasses break one promise."""

    def __init__(self) -> None:
        self.inner = ProceduralBackend()
        self.name, self.engine_version = self.inner.name, self.inner.engine_version
        self.passes, self.capabilities = self.inner.passes, self.inner.capabilities

    def open(self, clip) -> None:  # a ResolvedClip
        self.inner.open(clip)

    def frames(self, start: int, end: int, passes=None):
        return self.inner.frames(start, end, passes=passes)

    def close(self) -> None:
        self.inner.close()


class PoseFromAnotherTick(WrappedBackend):
    """Reads the camera before the tick moved it: frame i carries the pose of frame i - 1."""

    def frames(self, start, end, passes=None):
        previous = None
        for frame in self.inner.frames(start, end, passes=passes):
            stale = frame.camera_to_world if previous is None else previous
            previous = frame.camera_to_world
            yield dataclasses.replace(frame, camera_to_world=np.array(stale))


class ResumeIgnoresStartFrame(WrappedBackend):
    """Always renders from frame 0, whatever start_frame says."""

    def frames(self, start, end, passes=None):
        return self.inner.frames(0, end, passes=passes)


class WrongHashServicer(RenderServicer):
    """States a hash that is not the sha256 of the resolved clip it returns."""

    def OpenSession(self, request, context):
        response = super().OpenSession(request, context)
        response.resolved_sha256 = "0" * 64
        return response


class SecondSessionServicer(RenderServicer):
    """Lets a second client in while a session is open (interleaving two worlds in one engine)."""

    def _reserve_slot(self, context) -> None:
        with self._lock:
            self._opening = True


def _serve(backend=None, servicer_class=RenderServicer):
    config = ServerConfig(port=0, heartbeat_interval_ms=100)
    server = RenderServer(config, servicer=servicer_class(config))
    server.start()
    server.attach_backend(backend or ProceduralBackend())
    return server


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "backend_class, servicer_class, broken_rules, words",
    [
        # The first rule listed must be the first failure; the others may follow from the same fault.
        (None, WrongHashServicer, ["resolved_hash"], "resolved_sha256"),
        # A stale pose also makes the first resumed frame disagree with the full render.
        (PoseFromAnotherTick, RenderServicer, ["camera_state", "resume"], "pose of frame 0: pose from another tick"),
        (None, SecondSessionServicer, ["second_session_rejected"], "second OpenSession was accepted"),
        (ResumeIgnoresStartFrame, RenderServicer, ["resume"], "resume must start at start_frame"),
    ],
    ids=["wrong-hash", "pose-from-another-tick", "second-session-accepted", "resume-ignores-start-frame"],
)
def test_broken_servers_fail_naming_the_broken_rule(backend_class, servicer_class, broken_rules, words):
    server = _serve(backend_class() if backend_class else None, servicer_class)
    try:
        report = run_conformance(server.address)
    finally:
        server.stop(grace=0.5)
    failed = _failed(report)
    assert list(failed)[0] == broken_rules[0] and set(failed) == set(broken_rules), failed
    assert words in failed[broken_rules[0]], failed
    # Every other rule still ran and passed (or was skipped for a stated reason).
    assert all(r.status == "pass" for r in report.results if r.name not in broken_rules and r.name != "determinism")


@pytest.mark.timeout(60)
def test_cli_exit_code_names_the_broken_rule():
    from pipeline.cli import cli

    server = _serve(ResumeIgnoresStartFrame())
    try:
        result = CliRunner().invoke(cli, ["render-server", "check", server.address])
    finally:
        server.stop(grace=0.5)
    assert result.exit_code == 1
    assert "broken rule(s) resume" in result.output
    assert "FAIL resume" in result.output


def test_builtin_manifest_is_tiny():
    from contract.manifest import load_manifest

    manifest = load_manifest(BUILTIN_MANIFEST)
    assert manifest.output.frames <= 8 and manifest.output.width * manifest.output.height <= 64 * 64


@pytest.mark.timeout(60)
def test_check_over_tls_with_an_auth_token(tmp_path):
    """A server bound with TLS and a token: the check needs --tls-ca and --auth-token, and says so."""
    import subprocess

    from pipeline.cli import cli

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    config = ServerConfig(port=0, auth_token="s3cret", tls_cert=cert, tls_key=key)
    server = RenderServer(config)
    server.start()
    server.attach_backend(ProceduralBackend())
    try:
        runner = CliRunner()
        ok = runner.invoke(cli, ["render-server", "check", server.address, "--tls-ca", str(cert), "--auth-token", "s3cret",
                                 "--rule", "server_info", "--rule", "session_open", "--rule", "frame_sequence"])
        assert ok.exit_code == 0, ok.output
        no_token = runner.invoke(cli, ["render-server", "check", server.address, "--tls-ca", str(cert), "--rule", "server_info"])
        assert no_token.exit_code == 1 and "UNAUTHENTICATED" in no_token.output
    finally:
        server.stop(grace=0.5)
