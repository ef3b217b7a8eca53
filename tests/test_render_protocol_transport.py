"""The render protocol's transport rules, on a real gRPC server on loopback in this process.

The renderer here is the stand-in `GradientBackend` (test_render_protocol_support.py): these
tests are about chunking, heartbeats, cancellation, sessions, errors and integrity. The
acceptance tests with the procedural renderer in a server process are in
test_render_protocol_e2e.py.
"""
from __future__ import annotations

import hashlib
import json
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from contract.errors import UserError
from test_render_protocol_support import GradientBackend, inprocess_server, standin_clip
from unreal_bridge.client import FrameIntegrityError, RenderClient
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc
from unreal_bridge.access import check_bind_allowed
from unreal_bridge.server import SERVICE_NAME, RenderServicer, ServerConfig, RenderServer

pytestmark = pytest.mark.timeout(60)


def _stub(address: str) -> tuple[grpc.Channel, pb_grpc.RenderServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, pb_grpc.RenderServiceStub(channel)


def test_stream_layout_chunks_and_hashes():
    """Header then chunks <= max_chunk_bytes per frame and pass; chunks concatenate to the hash."""
    clip = standin_clip(width=64, height=48, frames=3)
    with inprocess_server(max_chunk_bytes=4096) as server:
        channel, stub = _stub(server.address)
        with channel:
            opened = stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=5)
            events = list(stub.Render(pb.RenderRequest(session_id=opened.session_id), timeout=10))
    assert events[0].WhichOneof("event") == "heartbeat"
    frames = [event for event in events if event.WhichOneof("event") != "heartbeat"]
    order = [(e.header.frame_index, getattr(e.header, "pass")) for e in frames if e.WhichOneof("event") == "header"]
    assert order == [(i, name) for i in range(3) for name in ("rgb", "depth", "segmentation")]
    payload, header, chunk_sizes = b"", None, []
    for event in frames:
        if event.WhichOneof("event") == "header":
            if header is not None:
                assert hashlib.sha256(payload).hexdigest() == header.sha256 and len(payload) == header.byte_size
            header, payload = event.header, b""
        else:
            assert event.chunk.offset == len(payload)
            chunk_sizes.append(len(event.chunk.data))
            payload += event.chunk.data
    assert hashlib.sha256(payload).hexdigest() == header.sha256
    assert max(chunk_sizes) == 4096 and 64 * 48 * 3 > 4096  # rgb really was split
    rgb_header = next(e.header for e in frames if e.WhichOneof("event") == "header")
    assert (rgb_header.dtype, rgb_header.channels, rgb_header.encoding) == ("uint8", 3, "raw")
    assert len(rgb_header.camera_to_world) == 16 and len(rgb_header.action) == 8
    assert rgb_header.intrinsics.width == 64


def test_client_reassembles_exactly_what_the_backend_rendered():
    clip = standin_clip(width=40, height=30, frames=5)
    reference = GradientBackend()
    reference.open(clip)
    expected = list(reference.frames(0, 5))
    with inprocess_server(max_chunk_bytes=1000) as server, RenderClient(server.address) as client:
        rendered = client.render_clip(clip)
    assert rendered.resolved_sha256 == clip["sha256"] and rendered.resumed_from == []
    for index, frame in enumerate(expected):
        assert np.array_equal(rendered.rgb[index], frame.passes["rgb"])
        assert np.array_equal(rendered.depth[index], frame.passes["depth"])
        assert np.array_equal(rendered.segmentation[index], frame.passes["segmentation"])
        assert np.array_equal(rendered.camera_to_world[index], frame.camera_to_world)
    assert rendered.intrinsics[0, 0] == 40 and rendered.actions[:, 0].tolist() == [1.0] * 5


def test_heartbeats_flow_while_the_backend_warms_up():
    """A backend silent for 1.2 s (warm-up) still yields heartbeats every ~0.1 s."""
    clip = standin_clip(frames=2)
    with inprocess_server(GradientBackend(warmup_delay=1.2), heartbeat_interval_ms=100) as server:
        channel, stub = _stub(server.address)
        with channel:
            opened = stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=5)
            arrivals = []
            for event in stub.Render(pb.RenderRequest(session_id=opened.session_id), timeout=10):
                arrivals.append((time.monotonic(), event.WhichOneof("event"), event))
    first_frame = next(t for t, kind, _ in arrivals if kind == "header")
    beats_before = [t for t, kind, _ in arrivals if kind == "heartbeat" and t < first_frame]
    assert len(beats_before) >= 6  # ~12 expected; generous for a loaded machine
    gaps = np.diff([t for t, _, _ in arrivals])
    assert gaps.max() < 1.0  # never a silence anywhere near the warm-up length
    last = arrivals[-1][2]
    assert last.WhichOneof("event") == "heartbeat" and last.heartbeat.frames_done == 2 == last.heartbeat.frames_total


def test_client_cancel_stops_the_render():
    backend = GradientBackend(frame_delay=0.05)
    clip = standin_clip(frames=200)
    with inprocess_server(backend) as server:
        channel, stub = _stub(server.address)
        with channel:
            opened = stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=5)
            call = stub.Render(pb.RenderRequest(session_id=opened.session_id))
            headers = 0
            for event in call:
                headers += event.WhichOneof("event") == "header"
                if headers >= 6:  # two frames in
                    call.cancel()
                    break
            time.sleep(0.5)
            started = backend.frames_started
            time.sleep(0.5)
            assert backend.frames_started == started  # the worker stopped, not just the network
            assert started < 30
            # and the session is free for the next Render (resume on the same server)
            events = list(stub.Render(pb.RenderRequest(session_id=opened.session_id, start_frame=198), timeout=10))
            assert sum(e.WhichOneof("event") == "header" for e in events) == 6


def test_one_session_at_a_time_and_dry_run_does_not_take_the_slot():
    clip = standin_clip()
    with inprocess_server() as server:
        first, second = RenderClient(server.address), RenderClient(server.address)
        resolved = second.resolve(clip)  # dry run while nothing is open
        assert resolved["sha256"] == clip["sha256"]
        opened = first.open_session(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)))
        assert opened.session_id and opened.frame_count == 6
        with pytest.raises(UserError, match=r"render server at 127\.0\.0\.1:\d+ is busy: .*one session at a time"):
            second.render_clip(clip)
        channel, stub = _stub(server.address)
        with channel, pytest.raises(grpc.RpcError) as caught:
            stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert second.resolve(clip)["sha256"] == clip["sha256"]  # dry run still answers while busy
        first.close_session(opened.session_id)
        assert second.render_clip(clip).frame_count == 6  # slot released by CloseSession
        first.close(), second.close()


def test_bad_manifest_is_invalid_argument_with_a_clear_client_message():
    bad = standin_clip()
    bad["output"]["width"] = -4
    with inprocess_server() as server:
        channel, stub = _stub(server.address)
        with channel, pytest.raises(grpc.RpcError) as caught:
            stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(bad), dry_run=True), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "output.width" in caught.value.details() and "\n" not in caught.value.details()
        with RenderClient(server.address) as client, pytest.raises(UserError) as error:
            client.render_clip(bad)
    line = error.value.one_line()
    assert line.startswith(f"render server at {server.address} rejected the manifest:") and "output.width" in line


class CorruptingServicer(RenderServicer):
    """A deliberately broken server: flips one byte of the second chunk it sends."""

    def Render(self, request, context):
        chunks = 0
        for event in super().Render(request, context):
            if event.WhichOneof("event") == "chunk":
                chunks += 1
                if chunks == 2:
                    data = bytearray(event.chunk.data)
                    data[0] ^= 0xFF
                    event.chunk.data = bytes(data)
            yield event


def test_client_detects_a_corrupted_chunk():
    with inprocess_server(servicer_class=CorruptingServicer) as server, RenderClient(server.address) as client:
        with pytest.raises(FrameIntegrityError, match=r"frame 0 pass 'depth' .* failed its sha256 check"):
            client.render_clip(standin_clip())


class FutureServicer(RenderServicer):
    def GetServerInfo(self, request, context):
        info = super().GetServerInfo(request, context)
        info.protocol_version = "2.1.0"
        return info


def test_protocol_major_mismatch_is_named():
    with inprocess_server(servicer_class=FutureServicer) as server, RenderClient(server.address) as client:
        with pytest.raises(UserError, match=r"speaks protocol 2\.x, this client 1\.x"):
            client.render_clip(standin_clip())


def test_unreachable_server_is_one_clear_line():
    with inprocess_server() as server:
        address = server.address
    with RenderClient(address, connect_timeout=0.5) as client, pytest.raises(UserError) as error:
        client.server_info()
    assert error.value.one_line().startswith(f"render server at {address} is not reachable")


def test_health_not_serving_until_backend_attached_then_serving_and_reflection_lists_service():
    with inprocess_server(attach=False) as server:
        channel = grpc.insecure_channel(server.address)
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.RenderServiceStub(channel).GetServerInfo(pb.GetServerInfoRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        server.attach_backend(GradientBackend())
        assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        assert SERVICE_NAME in database.get_services()
        assert "grpc.health.v1.Health" in database.get_services()
        file = database.FindFileContainingSymbol(SERVICE_NAME)
        assert file.name == "worldloom/render/v1/render.proto"
        assert {method.name for method in file.service[0].method} == {"GetServerInfo", "OpenSession", "Render", "CloseSession"}
        channel.close()


def test_auth_token_required_when_configured():
    with inprocess_server(auth_token="s3cret") as server:
        with RenderClient(server.address) as anonymous, pytest.raises(UserError, match="needs an auth token"):
            anonymous.server_info()
        with RenderClient(server.address, auth_token="wrong") as wrong, pytest.raises(UserError, match="refused"):
            wrong.render_clip(standin_clip())
        with RenderClient(server.address, auth_token="s3cret") as client:
            assert client.render_clip(standin_clip()).frame_count == 6


def test_non_loopback_bind_needs_a_token():
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind_allowed(host, None)
    with pytest.raises(UserError, match=r"refusing to bind non-loopback address '0\.0\.0\.0' without authentication; pass --auth-token"):
        check_bind_allowed("0.0.0.0", None)
    with pytest.raises(UserError, match="refusing to bind"):
        RenderServer(ServerConfig(host="0.0.0.0", port=0))
    check_bind_allowed("0.0.0.0", "token")


def test_chunk_size_limit_is_enforced():
    with pytest.raises(UserError, match="max_chunk_bytes"):
        ServerConfig(max_chunk_bytes=(1 << 20) + 1)


def test_idle_timeout_reconnects_and_resumes_on_the_same_server():
    """A server that goes silent (no frames, no heartbeats) is noticed by the idle timeout;
    the client reconnects to the same process (same server_id), keeps its session and
    resumes from the first missing frame."""

    class StallingServicer(RenderServicer):
        stalled = False

        def Render(self, request, context):
            for event in super().Render(request, context):
                if event.WhichOneof("event") == "header" and event.header.frame_index == 2 and not StallingServicer.stalled:
                    StallingServicer.stalled = True
                    time.sleep(1.5)  # silent: longer than the client's idle timeout
                    return
                yield event

    clip = standin_clip(frames=5)
    with inprocess_server(servicer_class=StallingServicer, heartbeat_interval_ms=100) as server:
        with RenderClient(server.address, idle_timeout=0.5, initial_backoff=0.05) as client:
            rendered = client.render_clip(clip)
        with RenderClient(server.address) as client:
            reference = client.render_clip(clip)
    assert rendered.resumed_from == [2]
    assert np.array_equal(rendered.rgb, reference.rgb) and np.array_equal(rendered.depth, reference.depth)


def _self_signed_certificate(folder) -> tuple:
    """A throwaway certificate for localhost / 127.0.0.1 made with the openssl CLI."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return key, cert


def test_network_bind_with_token_and_tls(tmp_path):
    """The configuration the CLI allows beyond loopback: a token, here with TLS."""
    key, cert = _self_signed_certificate(tmp_path)
    config = ServerConfig(host="0.0.0.0", port=0, auth_token="t0k3n", tls_cert=cert, tls_key=key)
    from test_render_protocol_support import standin_resolver

    server = RenderServer(config, servicer=RenderServicer(config, standin_resolver))
    server.start()
    server.attach_backend(GradientBackend())
    try:
        address = f"127.0.0.1:{server.port}"
        with RenderClient(address, auth_token="t0k3n", root_certificates=cert.read_bytes()) as client:
            assert client.render_clip(standin_clip()).frame_count == 6
        with RenderClient(address, auth_token="t0k3n", connect_timeout=1.0) as plaintext, pytest.raises(UserError, match="not reachable"):
            plaintext.server_info()  # a plaintext client cannot talk to the TLS port
    finally:
        server.stop(grace=0)


def test_subset_of_passes_and_unknown_pass():
    with inprocess_server() as server, RenderClient(server.address) as client:
        rendered = client.render_clip(standin_clip(), passes=["rgb", "rgb"])
        assert rendered.rgb.shape == (6, 24, 32, 3) and rendered.depth is None and rendered.segmentation is None
        with pytest.raises(UserError, match="passes normals are not in the clip"):
            client.render_clip(standin_clip(), passes=["normals"])


def test_client_waits_for_a_server_that_is_still_starting():
    """Health NOT_SERVING and calls UNAVAILABLE while the backend builds: the client waits."""
    import threading

    with inprocess_server(attach=False) as server:
        threading.Timer(0.6, server.attach_backend, args=(GradientBackend(),)).start()
        with RenderClient(server.address, connect_timeout=10.0) as client:
            assert client.render_clip(standin_clip()).frame_count == 6
    with inprocess_server(attach=False) as server:
        with RenderClient(server.address, connect_timeout=0.5) as client, pytest.raises(UserError, match="still starting"):
            client.server_info()
