"""The render server under hostile or careless clients (issue 14).

Real gRPC servers on loopback; the stand-in GradientBackend renders (these tests are about the
server's limits, not pixels), except where the procedural renderer's heightmap loading is tested.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.errors import UserError
from test_hardening_manifest import billion_laughs
from test_render_protocol_support import GradientBackend, inprocess_server, standin_clip, standin_resolver
from unreal_bridge.client import AUTH_TOKEN_ENV, RenderClient, token_from_env
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc
from unreal_bridge.open_request import resolve_request
from unreal_bridge.server import RenderServer, RenderServicer, ServerConfig

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]


def _health_latency(address: str) -> float:
    with grpc.insecure_channel(address) as channel:
        start = time.monotonic()
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        return time.monotonic() - start


def _open(address: str, request: pb.OpenSessionRequest, timeout: float = 30) -> grpc.StatusCode:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        try:
            pb_grpc.RenderServiceStub(channel).OpenSession(request, timeout=timeout)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def test_slow_resolves_never_take_the_grpc_threads():
    """Eight requests whose resolve blocks: two wait on the resolver pool, six are refused at once,
    and health and GetServerInfo keep answering. (Before: all eight gRPC threads blocked.)"""
    release = threading.Event()

    def stuck_resolver(request: pb.OpenSessionRequest) -> dict:
        release.wait(20)
        return standin_resolver(request)

    config = ServerConfig(host="127.0.0.1", port=0, resolve_workers=2, resolve_timeout_s=20)
    server = RenderServer(config, servicer=RenderServicer(config, stuck_resolver))
    server.start()
    server.attach_backend(GradientBackend())
    try:
        request = pb.OpenSessionRequest(resolved_clip_json=json.dumps(standin_clip()), dry_run=True)
        with futures.ThreadPoolExecutor(8) as pool:
            calls = [pool.submit(_open, server.address, request) for _ in range(8)]
            deadline = time.monotonic() + 20
            while sum(call.done() for call in calls) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            refused = [call.result() for call in calls if call.done()]
            assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 6  # two still wait on the resolver pool
            assert _health_latency(server.address) < 3.0
            with RenderClient(server.address) as client:
                assert client.server_info().backend == "standin"
            release.set()
            assert sorted(call.result().name for call in calls) == ["OK", "OK"] + ["RESOURCE_EXHAUSTED"] * 6
        assert server.servicer.refused["busy"] == 6
    finally:
        release.set()
        server.stop(grace=0)


def test_resolve_time_budget_and_request_size_limit():
    def slow_resolver(request: pb.OpenSessionRequest) -> dict:
        time.sleep(1.5)
        return standin_resolver(request)

    config = ServerConfig(host="127.0.0.1", port=0, resolve_timeout_s=0.3, max_manifest_bytes=1000)
    server = RenderServer(config, servicer=RenderServicer(config, slow_resolver))
    server.start()
    server.attach_backend(GradientBackend())
    try:
        request = pb.OpenSessionRequest(resolved_clip_json=json.dumps(standin_clip()), dry_run=True)
        assert _open(server.address, request) == grpc.StatusCode.DEADLINE_EXCEEDED
        big = pb.OpenSessionRequest(manifest_yaml="# " + "x" * 2000 + "\nversion: 1\n")
        with RenderClient(server.address) as client, pytest.raises(UserError, match="more than this server's limit of 1000"):
            client.open_session(big)
    finally:
        server.stop(grace=0)


def test_hostile_manifests_are_refused_by_the_real_resolver_and_health_answers():
    quickstart = (REPO / "manifests/examples/quickstart.yaml").read_text()
    action_bomb = quickstart.replace("w-", "w-50000000,w-", 1)
    assert action_bomb != quickstart
    hostile = [billion_laughs()] * 8 + [action_bomb, "a: &x [1, *x]\n"]
    config = ServerConfig(host="127.0.0.1", port=0)
    server = RenderServer(config, servicer=RenderServicer(config, resolve_request))
    server.start()
    server.attach_backend(GradientBackend())
    try:
        with futures.ThreadPoolExecutor(10) as pool:
            calls = [pool.submit(_open, server.address, pb.OpenSessionRequest(manifest_yaml=text)) for text in hostile]
            latencies = [_health_latency(server.address) for _ in range(5)]
            codes = [call.result() for call in calls]
        assert all(code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED) for code in codes), codes
        assert max(latencies) < 3.0
        with RenderClient(server.address) as client, pytest.raises(UserError, match="aliases"):
            client.open_session(pb.OpenSessionRequest(manifest_yaml=billion_laughs()))
    finally:
        server.stop(grace=0)


def test_deeply_nested_resolved_clip_json_is_bad_input_not_a_server_fault():
    """`[[[[...]]]]` (or a deep object in `randomized`) fits the size limit but overflows Python's
    recursion: INVALID_ARGUMENT in one line, not INTERNAL."""
    clip = standin_clip()
    nested: dict = {}
    for _ in range(900):
        nested = {"x": nested}
    clip["randomized"] = nested
    for text in ("[" * 100_000 + "]" * 100_000, json.dumps(clip)):
        with pytest.raises(UserError, match="nests too deeply"):
            resolve_request(pb.OpenSessionRequest(resolved_clip_json=text))


def test_resolved_clip_sizes_are_bounded():
    clip = standin_clip()
    clip["output"]["frames"] = 10**12
    with inprocess_server() as server:
        config = server.servicer.config
        servicer = RenderServicer(config, resolve_request)
        with pytest.raises(UserError, match=r"output.frames' is 1000000000000; it must be a number in \(0, 10000\]"):
            servicer.resolver(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)))


_KILLED_CLIENT = """
import json, sys
from unreal_bridge.client import RenderClient
address, clip = sys.argv[1], json.loads(sys.argv[2])
with RenderClient(address) as client:
    client.render_clip(clip, on_frame=lambda i: print("frame", i, flush=True))
"""


def test_a_sigkilled_client_frees_the_server_within_seconds():
    """The dead client's stream ends; after the short resume lease the next client gets the
    server. (Before: RESOURCE_EXHAUSTED 'busy' for 300 s.)"""
    clip = standin_clip(frames=400)
    with inprocess_server(backend=GradientBackend(frame_delay=0.05), resume_lease_s=2.0) as server:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
        child = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, server.address, json.dumps(clip)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout.readline().startswith("frame ")  # it is mid-stream
            child.kill()
            child.wait(10)
            killed_at = time.monotonic()
            with RenderClient(server.address) as client:
                rendered = client.render_clip(standin_clip(frames=3, seed=9))
            waited = time.monotonic() - killed_at
        finally:
            child.kill()
            child.stdout.close()
        assert rendered.frame_count == 3
        assert waited < 2.0 + 5.0, f"the next client waited {waited:.1f} s"


def test_an_abandoned_session_is_closed_after_the_resume_lease():
    clip = standin_clip(frames=40)
    with inprocess_server(backend=GradientBackend(frame_delay=0.02), resume_lease_s=0.5) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.RenderServiceStub(channel)
            opened = stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=5)
            call = stub.Render(pb.RenderRequest(session_id=opened.session_id))
            next(iter(call))
            call.cancel()  # the client goes away mid-stream
        deadline = time.monotonic() + 5
        while server.servicer._session is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.servicer._session is None


def test_a_client_resumes_within_the_lease_and_reopens_after_it():
    """A network blip within the lease resumes the same session; a session the server let go is
    re-opened by the client from the resolved clip (NOT_FOUND is not fatal)."""
    clip = standin_clip(frames=6)
    with inprocess_server(resume_lease_s=0.2) as server, RenderClient(server.address, initial_backoff=0.05) as client:
        opened = client.open_session(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)))
        list(client._connect().Render(pb.RenderRequest(session_id=opened.session_id, end_frame=2)))
        time.sleep(1.0)  # the lease runs out: the server closes the session
        assert server.servicer._session is None
        rendered = client.render_clip(clip)
    assert rendered.frame_count == 6


# ------------------------------------------------------------------------------- heightmaps


def _png_bytes(values: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_heightmaps_come_only_from_asset_folders_or_the_request(tmp_path):
    from unreal_bridge.procedural.heightfield import load_heightmap_png

    ramp = np.tile(np.arange(0, 256, 16), (16, 1))
    private = tmp_path / "private" / "secret.png"
    private.parent.mkdir()
    private.write_bytes(_png_bytes(ramp))
    unreadable = tmp_path / "private" / "locked.png"
    unreadable.write_bytes(_png_bytes(ramp))
    unreadable.chmod(0)
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "ramp.png").write_bytes(_png_bytes(ramp))
    (assets / "escape.png").symlink_to(private)

    messages = []
    for spec in (str(private), str(unreadable), str(tmp_path / "missing.png"), "../private/secret.png", "escape.png", "/etc/passwd"):
        with pytest.raises(UserError) as error:
            load_heightmap_png(spec, 9, (assets,))
        messages.append(re.sub(r"heightmap: '[^']*' is", "heightmap: SPEC is", error.value.one_line()))
    assert len(set(messages)) == 1 and "not an available heightmap" in messages[0]  # no existence oracle

    from_folder = load_heightmap_png("ramp.png", 9, (assets,))
    embedded = load_heightmap_png("data:image/png;base64," + base64.b64encode(_png_bytes(ramp)).decode(), 9)
    assert np.array_equal(from_folder, embedded) and from_folder[:, -1].min() == 1.0
    assert load_heightmap_png("heightmaps/wm_height_out.png", 9).shape == (9, 9)  # packaged: always there
    with pytest.raises(UserError, match="not an available heightmap"):
        load_heightmap_png("ramp.png", 9)  # an asset folder the server was not given is not searched


def test_the_procedural_server_does_not_open_a_path_the_client_names(tmp_path):
    """End to end: a terrain clip naming a private PNG by absolute path is INVALID_ARGUMENT."""
    from contract.manifest import load_manifest, resolve_clip
    from unreal_bridge.procedural import ProceduralBackend

    private = tmp_path / "secret.png"
    private.write_bytes(_png_bytes(np.tile(np.arange(0, 256, 16), (16, 1))))
    manifest = {
        "version": 1, "name": "t", "seed": 1, "output": {"width": 32, "height": 24, "fps": 8, "frames": 2},
        "passes": ["rgb"],
        "scenes": [{"name": "t", "world": {"generator": "terrain", "params": {"heightmap": str(private)}},
                    "camera": {"rig": "first_person"}, "motion": {"policy": "static"}}],
    }
    clip = resolve_clip(load_manifest(manifest), "t", 0)
    with inprocess_server(backend=ProceduralBackend()) as server, RenderClient(server.address) as client:
        with pytest.raises(UserError, match="not an available heightmap"):
            client.open_session(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)))


# ------------------------------------------------------------------------------- the token


def test_token_env_names_and_file(tmp_path, monkeypatch, caplog):
    from unreal_bridge.cli import choose_token

    assert token_from_env({AUTH_TOKEN_ENV: "a1"}) == "a1"
    assert token_from_env({"WORLDLOOM_RENDER_TOKEN": "old", AUTH_TOKEN_ENV: ""}) == "old"
    assert "deprecated" in caplog.text
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    assert choose_token(None, token_file, {}) == "s3cret"
    assert choose_token(None, None, {AUTH_TOKEN_ENV: "e"}) == "e"
    with pytest.raises(UserError, match="cannot read it"):
        choose_token(None, tmp_path / "nope", {})
    token_file.write_text("two words")
    with pytest.raises(UserError, match="one token"):
        choose_token(None, token_file, {})
    monkeypatch.setenv(AUTH_TOKEN_ENV, "from-env")
    assert RenderClient("127.0.0.1:1").auth_token == "from-env"


def test_server_reads_the_token_from_a_file_not_the_process_list(tmp_path):
    from unreal_bridge.launch import ProceduralServer

    token_file = tmp_path / "token"
    token_file.write_text("f1le-t0ken\n")
    env = {key: value for key, value in os.environ.items() if key not in (AUTH_TOKEN_ENV, "WORLDLOOM_RENDER_TOKEN")}
    with ProceduralServer(extra_args=("--auth-token-file", str(token_file)), env=env) as server:
        assert b"f1le-t0ken" not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
        with RenderClient(server.address, auth_token="wrong") as wrong, pytest.raises(UserError, match="refused"):
            wrong.server_info()
        with RenderClient(server.address, auth_token="f1le-t0ken") as right:
            assert right.server_info().backend == "procedural"
