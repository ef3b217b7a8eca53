"""The Unreal backend, run against the FAKE `unreal` module (tests/fake_unreal) behind the real gRPC server.

The editor cannot run here; the fake enforces the rule that matters (no `unreal.*` off the game
thread), simulates ticks, level loading and deterministic captures. Everything else is real:
the generic servicer on loopback, the client, the conformance suite.
"""
from __future__ import annotations

import json
import sys
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest

from fake_unreal import (
    DirectionalLight,
    ExponentialHeightFog,
    FakeEditor,
    FakeUnrealThreadError,
    SkyLight,
    VolumetricCloud,
    fake_rgb,
)
from unreal_bridge.client import RenderClient
from unreal_bridge.conformance import run_conformance
from unreal_bridge.conformance.stream import read_render
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc
from unreal_bridge.server import RenderServer, ServerConfig
from unreal_bridge.unreal import coords
from unreal_bridge.unreal.backend import UnrealBackend, UnrealBackendConfig
from unreal_bridge.unreal.environment import FOG_DENSITY_CLEAR, FOG_DENSITY_RANGE, sun_rotator
from unreal_bridge.unreal.game_thread import GameThreadExecutor

FRAMES, WARMUP = 6, 2


def probe_manifest(level: str = "/Game/Maps/Courtyard", *, extra_camera: str = "", passes: str = "[rgb, depth]",
                   world: str | None = None, rig: str = "first_person") -> str:
    world = world or f"{{level: {level}}}"
    return f"""\
version: 1
name: unreal_probe
seed: 1234
renderer: {{backend: unreal, endpoints: ["127.0.0.1:50051"]}}
output: {{width: 32, height: 24, fps: 10, frames: {FRAMES}}}
passes: {passes}
simulation: {{warmup_frames: {WARMUP}}}
scenes:
  - name: courtyard
    world: {world}
    camera: {{rig: {rig}, intrinsics: {{fov_deg: 70.0}}{extra_camera}}}
    motion: {{policy: scripted, actions: "w-2,wl-2,wi-2"}}
    environment:
      sun: {{elevation_deg: 20, azimuth_deg: 250}}
      weather: {{cloudiness: 0.4, fog: 0.1, rain: 0.2, wetness: 0.5}}
"""


class Bridge:
    """A fake editor running the real start-up path: executor + UnrealBackend + RenderServer."""

    def __init__(self, editor: FakeEditor, config: UnrealBackendConfig | None = None) -> None:
        self.editor = editor
        self.executor = GameThreadExecutor()

        def start_on_game_thread() -> UnrealBackend:
            self.executor.install(editor.module)
            return UnrealBackend(editor.module, self.executor, config)

        self.backend = editor.run_on_game_thread(start_on_game_thread)
        self.server = RenderServer(ServerConfig(port=0, heartbeat_interval_ms=100))
        self.server.start()
        self.server.attach_backend(self.backend)
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = pb_grpc.RenderServiceStub(self.channel)

    @property
    def address(self) -> str:
        return self.server.address

    def open(self, manifest: str) -> pb.OpenSessionResponse:
        return self.stub.OpenSession(pb.OpenSessionRequest(manifest_yaml=manifest), timeout=30)

    def render(self, session_id: str, start: int = 0, end: int = 0):
        return read_render(self.stub, pb.RenderRequest(session_id=session_id, start_frame=start, end_frame=end),
                           metadata=(), timeout_s=30)

    def stop(self) -> None:
        self.channel.close()
        self.server.stop(grace=0.5)


@pytest.fixture
def editor():
    with FakeEditor() as fake:
        yield fake
    assert not fake.callback_errors, fake.callback_errors


@pytest.fixture
def bridge(editor):
    running = Bridge(editor)
    yield running
    running.stop()


# ------------------------------------------------------------------------------ pure parts


def test_coordinate_conversion_known_cases_and_round_trip():
    from unreal_bridge.procedural.camera import look_at

    # Looking along worldloom +X, level: Unreal's identity rotation; metres -> centimetres.
    location, rotator = coords.opencv_pose_to_unreal(look_at([1.0, 2.0, 1.5], [9.0, 2.0, 1.5]))
    assert np.allclose(location, (100.0, -200.0, 150.0)) and np.allclose(rotator, (0.0, 0.0, 0.0), atol=1e-9)
    # worldloom +Y is to the left of +X; Unreal yaw is positive to the right, so -90.
    assert np.allclose(coords.opencv_pose_to_unreal(look_at([0, 0, 0], [0, 5, 0]))[1], (0, 0, -90), atol=1e-9)
    # Looking up 30 degrees is positive pitch.
    up = look_at([0, 0, 0], [np.cos(np.radians(30)), 0, np.sin(np.radians(30))])
    assert np.allclose(coords.opencv_pose_to_unreal(up)[1], (0, 30, 0), atol=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(50):
        position, target = rng.normal(size=3) * 10, rng.normal(size=3) * 10
        pose = look_at(position, target)
        back = coords.unreal_to_opencv_pose(*coords.opencv_pose_to_unreal(pose))
        assert np.allclose(back, pose, atol=1e-9)


def test_sun_rotator_points_the_light_away_from_the_sun():
    # Sun in the east (+X, azimuth 90) at 30 degrees: light travels west and down.
    roll, pitch, yaw = sun_rotator(30.0, 90.0)
    forward = coords.rotator_to_axes(roll, pitch, yaw)[:, 0]  # Unreal coordinates
    assert np.allclose(forward, [-np.cos(np.radians(30)), 0.0, -np.sin(np.radians(30))], atol=1e-9)
    # Sun in the north (+Y): light travels towards -Y in worldloom = +Y in Unreal.
    forward = coords.rotator_to_axes(*sun_rotator(0.0, 0.0))[:, 0]
    assert np.allclose(forward, [0.0, 1.0, 0.0], atol=1e-9)


def test_the_fake_refuses_unreal_calls_off_the_game_thread(editor):
    # Reading attributes (classes, enum members) is allowed off the game thread, as in the engine ...
    assert editor.module.TextureRenderTargetFormat.RTF_RGBA16F.name == "RTF_RGBA16F"
    subsystem = editor.run_on_game_thread(lambda: editor.module.get_editor_subsystem(editor.module.EditorActorSubsystem))
    method = subsystem.get_all_level_actors  # ... so is looking a method up,
    # ... but calling a function or a method is not.
    with pytest.raises(FakeUnrealThreadError):
        editor.module.get_editor_subsystem(editor.module.EditorActorSubsystem)
    with pytest.raises(FakeUnrealThreadError):
        method()
    with pytest.raises(FakeUnrealThreadError):
        editor.module.EditorAssetLibrary.does_asset_exist("/Game/Maps/Courtyard")
    assert len(editor.violations) == 3
    editor.violations.clear()


# ------------------------------------------------------------------------------ threading and pacing


def test_render_through_grpc_never_touches_unreal_off_the_game_thread(bridge, editor):
    clip = RenderClient(bridge.address).render_clip(probe_manifest())
    assert clip.rgb.shape == (FRAMES, 24, 32, 3) and clip.depth.shape == (FRAMES, 24, 32)
    assert editor.violations == []


def test_a_backend_that_calls_unreal_from_a_grpc_thread_is_caught(editor):
    """Negative control: the same server with a backend that skips the queue fails loudly."""

    class Careless(UnrealBackend):
        def open(self, clip) -> None:  # a ResolvedClip
            self.unreal.EditorAssetLibrary.does_asset_exist(clip.world["level"])  # wrong thread

    executor = GameThreadExecutor()
    backend = editor.run_on_game_thread(lambda: (executor.install(editor.module), Careless(editor.module, executor))[1])
    server = RenderServer(ServerConfig(port=0))
    server.start()
    server.attach_backend(backend)
    try:
        with grpc.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.RpcError) as error:
                pb_grpc.RenderServiceStub(channel).OpenSession(pb.OpenSessionRequest(manifest_yaml=probe_manifest()), timeout=10)
        assert error.value.code() == grpc.StatusCode.INTERNAL
        assert "not the game thread" in error.value.details()
        assert editor.violations and "ThreadPoolExecutor" in editor.violations[0]
    finally:
        editor.violations.clear()
        server.stop(grace=0.5)


def test_frame_pacing_one_capture_per_step_and_pose_from_the_same_tick(bridge, editor):
    opened = bridge.open(probe_manifest())
    clip = json.loads(opened.resolved_clip_json)
    editor.captures.clear()
    stream = bridge.render(opened.session_id)
    step = 1.0 / 10
    # Warm-up captures first (discarded), then one capture per pass per frame.
    passes = 2
    assert len(editor.captures) == (WARMUP + FRAMES) * passes
    frame_captures = editor.captures[WARMUP * passes:]
    ticks = [frame_captures[i * passes].tick for i in range(FRAMES)]
    assert all(later > earlier for earlier, later in zip(ticks, ticks[1:])), f"two frames in one tick: {ticks}"
    for i in range(FRAMES):
        pair = frame_captures[i * passes:(i + 1) * passes]
        assert {c.tick for c in pair} == {ticks[i]}  # every pass of a frame in the same tick
    by_key = stream.by_key()
    for i in range(FRAMES):
        header = by_key[(i, "rgb")].header
        assert header.sim_time == pytest.approx(i * step, abs=1e-12)
        pose = np.asarray(header.camera_to_world).reshape(4, 4)
        assert np.allclose(pose, np.asarray(clip["poses"][i]).reshape(4, 4), atol=1e-9)
        # The pixels are the fake's rendering of exactly the transform reported with them.
        capture = frame_captures[i * passes]
        location, rotator = coords.opencv_pose_to_unreal(pose)
        assert np.allclose(location, (capture.location.x, capture.location.y, capture.location.z), atol=1e-6)
        assert np.allclose(rotator, (capture.rotation.roll, capture.rotation.pitch, capture.rotation.yaw), atol=1e-6)
        expected = fake_rgb(capture.location, capture.rotation, capture.fov, editor._environment_state(), 32, 24)
        assert bytes(by_key[(i, "rgb")].payload) == expected.tobytes()
        # Depth: centimetres -> metres, the sky clamped to the far plane (never inf).
        depth = np.frombuffer(bytes(by_key[(i, "depth")].payload), dtype="<f4").reshape(24, 32)
        assert depth[0, 0] == pytest.approx(500.0) and depth.max() == pytest.approx(500.0)
        assert 5.0 < depth[-1, 0] < 50.0
    assert editor.violations == []


def test_resume_from_start_frame_matches_the_full_render(bridge, editor):
    opened = bridge.open(probe_manifest())
    full = bridge.render(opened.session_id).by_key()
    tail = bridge.render(opened.session_id, start=4)
    assert tail.indices() == [4, 5]
    for frame in tail.frames:
        reference = full[(frame.index, frame.pass_name)]
        assert frame.header.sha256 == reference.header.sha256
        assert list(frame.header.camera_to_world) == list(reference.header.camera_to_world)
        assert frame.header.sim_time == reference.header.sim_time
    middle = bridge.render(opened.session_id, start=2, end=3)
    assert middle.indices() == [2]


def test_environment_is_applied_on_the_level(bridge, editor):
    bridge.open(probe_manifest())

    def state():
        sun = editor.actors_of(DirectionalLight)[0]
        fog = editor.actors_of(ExponentialHeightFog)[0]
        cloud = editor.actors_of(VolumetricCloud)[0]
        sky = editor.actors_of(SkyLight)[0]
        return (object.__getattribute__(sun, "_rotation"), editor.component_props(object.__getattribute__(fog, "_components")[0]),
                object.__getattribute__(object.__getattribute__(cloud, "_components")[0], "_visible"),
                object.__getattribute__(object.__getattribute__(sky, "_components")[0], "_recaptures"))

    rotation, fog, cloud_visible, recaptures = state()
    assert (rotation.roll, rotation.pitch, rotation.yaw) == pytest.approx(sun_rotator(20.0, 250.0))
    assert fog["fog_density"] == pytest.approx(FOG_DENSITY_CLEAR + 0.1 * FOG_DENSITY_RANGE)
    assert cloud_visible and recaptures == 1
    assert editor.mpc_scalars() == pytest.approx({"Cloudiness": 0.4, "Rain": 0.2, "Wetness": 0.5, "Fog": 0.1})
    assert editor.current_level == "/Game/Maps/Courtyard"


def test_clips_of_the_same_level_do_not_reload_it(bridge, editor):
    for _ in range(2):
        opened = bridge.open(probe_manifest())
        bridge.stub.CloseSession(pb.CloseSessionRequest(session_id=opened.session_id), timeout=10)
    opened = bridge.open(probe_manifest("/Game/Maps/Empty"))
    assert editor.level_loads == ["/Game/Maps/Courtyard", "/Game/Maps/Empty"]
    # Closing a session removes the rig; the next open spawns a fresh one.
    from fake_unreal import CineCameraActor, SceneCapture2D

    assert len(editor.actors_of(CineCameraActor)) == 1 and len(editor.actors_of(SceneCapture2D)) == 2


def test_a_level_without_sky_actors_still_renders_and_says_what_it_lacks(bridge, editor):
    opened = bridge.open(probe_manifest("/Game/Maps/Empty"))
    assert bridge.render(opened.session_id).indices() == list(range(FRAMES))
    warnings = [message for kind, message in editor.log if kind == "warning"]
    assert any("DirectionalLight" in message for message in warnings)
    assert any("ExponentialHeightFog" in message for message in warnings)


# ------------------------------------------------------------------------------ errors -> status codes


@pytest.mark.parametrize(
    "manifest, words",
    [
        (probe_manifest("/Game/Maps/Atlantis"), ["world.level", "/Game/Maps/Atlantis"]),
        (probe_manifest(world="{generator: city}"), ["world", "world.level"]),
        (probe_manifest(passes="[rgb, segmentation]"), ["passes", "segmentation"]),
        (probe_manifest(extra_camera=", start: {position: [0, 0, 0]}", rig="vehicle"), ["vehicle"]),
    ],
    ids=["level-not-found", "procedural-world", "unsupported-pass", "physics-rig"],
)
def test_bad_clips_are_invalid_argument_with_a_clear_message(bridge, editor, manifest, words):
    with pytest.raises(grpc.RpcError) as error:
        bridge.open(manifest)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    details = error.value.details()
    assert "\n" not in details and all(word in details for word in words), details
    # The server stays usable: a good manifest opens afterwards.
    assert bridge.open(probe_manifest()).session_id


def test_off_centre_principal_point_is_refused(bridge):
    clip = json.loads(bridge.stub.OpenSession(pb.OpenSessionRequest(manifest_yaml=probe_manifest(), dry_run=True)).resolved_clip_json)
    clip["camera"]["intrinsics"]["cx"] = 3.0
    clip.pop("sha256")
    with pytest.raises(grpc.RpcError) as error:
        bridge.stub.OpenSession(pb.OpenSessionRequest(resolved_clip_json=json.dumps(clip)), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "camera.intrinsics.cx" in error.value.details()


def test_slow_level_load_keeps_grpc_responsive(editor):
    editor.load_delay_s = 1.0
    bridge = Bridge(editor)
    try:
        opened: dict = {}
        opener = threading.Thread(target=lambda: opened.setdefault("response", bridge.open(probe_manifest())))
        opener.start()
        time.sleep(0.2)  # the game thread is now blocked inside load_level
        started = time.monotonic()
        info = bridge.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5)
        assert info.backend == "unreal" and time.monotonic() - started < 0.5
        opener.join(timeout=10)
        assert opened["response"].session_id
    finally:
        bridge.stop()


def test_a_hung_editor_fails_the_render_instead_of_hanging(editor):
    bridge = Bridge(editor, UnrealBackendConfig(stall_s=0.5, frame_timeout_s=5.0))
    try:
        opened = bridge.open(probe_manifest())
        editor.pause_ticks()
        with pytest.raises(grpc.RpcError) as error:
            bridge.render(opened.session_id)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable: restart the editor and resume
        assert "has not ticked" in error.value.details()
    finally:
        editor.resume_ticks()
        bridge.stop()


# ------------------------------------------------------------------------------ the whole contract


@pytest.mark.timeout(60)
def test_unreal_backend_on_the_fake_passes_the_conformance_suite(bridge, editor):
    report = run_conformance(bridge.address, manifest_yaml=probe_manifest())
    assert report.passed, [(r.name, r.message) for r in report.failed]
    assert report.result("camera_state").status == "pass"
    assert report.result("determinism").status == "skip"  # GPU rendering: not advertised
    assert editor.violations == []


def test_startup_script_serves_and_stops(editor, monkeypatch):
    from unreal_bridge.unreal import startup

    monkeypatch.setenv("WORLDLOOM_UNREAL_PORT", "0")
    handle = editor.run_on_game_thread(lambda: startup.main(["--heartbeat-ms", "200"], unreal_module=editor.module))
    try:
        assert editor.keep_python_script_alive is True
        assert len(editor.callbacks) == 1
        report = run_conformance(handle.address, manifest_yaml=probe_manifest(),
                                 rules=["server_info", "health", "session_open", "frame_sequence"])
        assert report.passed, [(r.name, r.message) for r in report.failed]
        assert any("ready on" in message for _, message in editor.log)
    finally:
        editor.run_on_game_thread(startup.stop)
    assert editor.callbacks == {}
    assert editor.violations == []


def test_install_plugin_lays_out_the_project(tmp_path):
    from unreal_bridge.unreal.install_plugin import install

    (tmp_path / "MyProject.uproject").write_text("{}")
    plugin = install(tmp_path)
    descriptor = json.loads((plugin / "WorldloomBridge.uplugin").read_text())
    requirements = descriptor["PythonRequirements"][0]["Requirements"]
    assert any(line.startswith("grpcio==") and "--hash=sha256:" in line for line in requirements)
    site = plugin / "Content" / "Python" / "Lib" / "site-packages"
    assert (site / "unreal_bridge" / "unreal" / "startup.py").is_file()
    assert (site / "unreal_bridge" / "protos" / "worldloom" / "render" / "v1" / "render_pb2.py").is_file()
    assert (site / "contract" / "manifest" / "resolve.py").is_file() and not (site / "pipeline").exists()
    assert not (site / "unreal_bridge" / "unreal" / "plugin").exists()
    # Only what the editor imports: not the procedural renderer (PyBullet), the client, the checker or the CLI.
    for absent in ("procedural", "conformance", "client.py", "launch.py", "cli.py"):
        assert not (site / "unreal_bridge" / absent).exists(), absent
    # ... and that is enough: the server and the Unreal backend import from the copy alone (no site,
    # so neither this checkout's editable install nor anything but the third-party packages is on the path).
    third_party = [p for p in sys.path if p.endswith("site-packages")]
    probe = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path += sys.argv[2:]; "
             "import unreal_bridge.server, unreal_bridge.unreal.backend, unreal_bridge.unreal.startup, contract.clip; "
             "assert unreal_bridge.server.__file__.startswith(sys.argv[1]), unreal_bridge.server.__file__")
    subprocess.run([sys.executable, "-S", "-c", probe, str(site), *third_party], check=True, timeout=60, cwd=plugin)
    assert (plugin / "Content" / "Python" / "init_unreal.py").is_file()
    from contract.errors import UserError

    with pytest.raises(UserError, match="--force"):
        install(tmp_path)
    with pytest.raises(UserError, match="uproject"):
        install(tmp_path / "nowhere")


# ------------------------------------------------------------------------------ cinematic path (Movie Render Queue)


@pytest.mark.timeout(60)
def test_movie_render_queue_path_renders_asynchronously_through_delegates(editor, tmp_path):
    bridge = Bridge(editor, UnrealBackendConfig(capture="movie_render_queue", cinematic_dir=tmp_path))
    try:
        opened = bridge.open(probe_manifest())
        clip = json.loads(opened.resolved_clip_json)
        ticks_before = editor.tick_count
        stream = bridge.render(opened.session_id)
        assert stream.indices() == list(range(FRAMES))
        render = editor.movie_renders[-1]
        # The editor kept ticking while MRQ rendered: a frame every 2 ticks, the delegate after the last.
        assert render["ticks"] >= FRAMES * editor.movie_render_ticks_per_frame
        assert editor.tick_count - ticks_before >= render["ticks"]
        settings = render["settings"]
        assert settings["MoviePipelineAntiAliasingSetting"]["temporal_sample_count"] == 1
        # Warm-up frames that render (TAA and exposure history), not engine ticks that render nothing.
        assert settings["MoviePipelineAntiAliasingSetting"]["render_warm_up_count"] == WARMUP
        assert settings["MoviePipelineAntiAliasingSetting"]["engine_warm_up_count"] == 0
        assert (settings["MoviePipelineOutputSetting"]["output_resolution"].x, settings["MoviePipelineOutputSetting"]["output_resolution"].y) == (32, 24)
        assert "MoviePipelineImageSequenceOutput_PNG" in settings
        by_key = stream.by_key()
        for i in range(FRAMES):
            pose = np.asarray(clip["poses"][i]).reshape(4, 4)
            assert np.allclose(np.asarray(by_key[(i, "rgb")].header.camera_to_world).reshape(4, 4), pose, atol=1e-9)
            location, rotator = coords.opencv_pose_to_unreal(pose)
            from fake_unreal import Rotator, Vector

            expected = fake_rgb(Vector(*location), Rotator(*rotator), 70.0, editor._environment_state(), 32, 24)
            assert bytes(by_key[(i, "rgb")].payload) == expected.tobytes()  # the keyed pose was rendered
            assert (i, "depth") in by_key  # depth from SceneCapture2D at the same pose
        assert list(tmp_path.iterdir()) == []  # the PNGs were cleaned up
        assert editor.violations == []
        bridge.stub.CloseSession(pb.CloseSessionRequest(session_id=opened.session_id), timeout=10)
        report = run_conformance(bridge.address, manifest_yaml=probe_manifest(),
                                 rules=["server_info", "session_open", "frame_sequence", "camera_state", "resume"])
        assert report.passed, [(r.name, r.message) for r in report.failed]
    finally:
        bridge.stop()


def test_movie_render_queue_failure_is_reported(editor, tmp_path):
    bridge = Bridge(editor, UnrealBackendConfig(capture="movie_render_queue", cinematic_dir=tmp_path))
    try:
        opened = bridge.open(probe_manifest())
        editor.movie_render_fails = "GPU crashed"
        with pytest.raises(grpc.RpcError) as error:
            bridge.render(opened.session_id)
        assert error.value.code() == grpc.StatusCode.INTERNAL
        assert "Movie Render Queue failed: GPU crashed" in error.value.details()
    finally:
        editor.movie_render_fails = None
        bridge.stop()


def test_mrq_keys_unwrap_yaw_across_the_seam():
    from unreal_bridge.procedural.camera import look_at
    from unreal_bridge.unreal.mrq import keyed_transforms

    # Turning through Unreal yaw +-180 must not jump by 360 degrees between keys.
    angles = np.radians([170.0, 178.0, 186.0, 194.0])
    poses = np.stack([look_at([0, 0, 0], [np.cos(a), -np.sin(a), 0.0]) for a in angles])
    yaw = keyed_transforms(poses)[:, 5]
    assert np.all(np.abs(np.diff(yaw)) < 10.0), yaw
