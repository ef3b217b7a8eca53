"""Issue 15: the six fixes from the check against the real engine API, each against the corrected fake.

The fake (tests/fake_unreal, a named fake) now models the engine where these fixes matter:
formats and read-back (KismetRenderingLibrary.cpp), capture view state, the editor's background
throttle, MovieRenderQueue letterboxing and warm-up, struct copies. Each test below would fail
on the backend as it was before the fix.
"""
from __future__ import annotations

import numpy as np
import pytest

from fake_unreal import (
    UNADAPTED_GAIN,
    AttachmentRule,
    FakeEditor,
    Rotator,
    SceneCapture2D,
    Vector,
    fake_depth_cm,
    fake_rgb,
)
from contract.errors import UserError
from contract.manifest import load_manifest, resolve_clip
from unreal_bridge.unreal import coords
from unreal_bridge.unreal.backend import UnrealBackend, UnrealBackendConfig
from unreal_bridge.unreal.game_thread import GameThreadExecutor
from unreal_bridge.unreal.plan import plan_for_editor
from unreal_bridge.unreal.readback import half_spacing_cm


def clip(width=32, height=24, frames=4, warmup=2, passes="[rgb, depth]", far_m=500.0) -> dict:
    manifest = f"""
version: 1
name: fixes
seed: 7
renderer: {{backend: unreal}}
output: {{width: {width}, height: {height}, fps: 10, frames: {frames}}}
passes: {passes}
simulation: {{warmup_frames: {warmup}}}
scenes:
  - name: courtyard
    world: {{level: /Game/Maps/Courtyard}}
    camera: {{rig: first_person, intrinsics: {{fov_deg: 70.0}}, far_m: {far_m}}}
    motion: {{policy: scripted, actions: "w-{frames}"}}
"""
    return resolve_clip(load_manifest(manifest), "courtyard", 0)


def start(editor: FakeEditor, config: UnrealBackendConfig | None = None) -> UnrealBackend:
    executor = GameThreadExecutor()
    return editor.run_on_game_thread(lambda: (executor.install(editor.module), UnrealBackend(editor.module, executor, config))[1])


def render(backend: UnrealBackend, resolved: dict, start_frame: int = 0, end_frame: int | None = None) -> list:
    backend.open(resolved)
    frames = list(backend.frames(start_frame, resolved["output"]["frames"] if end_frame is None else end_frame))
    return frames


@pytest.fixture
def editor():
    with FakeEditor(load_delay_s=0.0) as fake:
        yield fake
    assert not fake.callback_errors, fake.callback_errors
    assert fake.violations == []


# ------------------------------------------------------------------------------ 1. depth format


def test_the_fake_refuses_what_the_engine_refuses_for_an_r32f_target(editor):
    """Why the depth pass moved: an RTF_R32F target cannot be read raw or exported (KismetRenderingLibrary.cpp)."""
    unreal = editor.module

    def old_depth_path(tmp):
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        target = unreal.RenderingLibrary.create_render_target2d(world, 8, 6, unreal.TextureRenderTargetFormat.RTF_R32F)
        object.__getattribute__(target, "_store")(np.full((6, 8), 1234.0))
        raw = unreal.RenderingLibrary.read_render_target_raw(world, target, False)
        unreal.RenderingLibrary.export_render_target(world, target, str(tmp), "depth.exr")
        return raw

    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    assert editor.run_on_game_thread(lambda: old_depth_path(tmp)) is None
    assert (tmp / "depth.exr").stat().st_size == 0  # file created, encoder refused: an empty file


def test_depth_round_trips_in_metres_through_the_rgba16f_target(editor):
    backend = start(editor)
    resolved = clip()
    frames = render(backend, resolved)
    captures = [c for c in editor.captures if c.source == "SCS_SCENE_DEPTH"][-len(frames):]
    for frame, capture in zip(frames, captures):
        truth_m = fake_depth_cm(capture.location, capture.rotation, 32, 24).astype(np.float64) / 100.0
        depth = frame.passes["depth"]
        assert depth.dtype == np.float32 and depth.shape == (24, 32)
        sky = truth_m >= 500.0
        assert np.all(depth[sky] == 500.0)  # sky (+inf in half floats) reported as far_m
        spacing_m = np.vectorize(half_spacing_cm)(truth_m[~sky] * 100.0) / 100.0
        assert np.all(np.abs(depth[~sky] - truth_m[~sky]) <= spacing_m / 2 + 1e-6)
    backend.close()


def test_a_far_plane_beyond_the_half_float_ceiling_is_refused_before_the_editor_is_touched():
    with pytest.raises(UserError, match=r"camera.far_m.*655.04"):
        plan_for_editor(clip(far_m=1000.0))
    assert plan_for_editor(clip(far_m=1000.0, passes="[rgb]")).far_m == 1000.0  # no depth pass: no ceiling


# ------------------------------------------------------------------------------ 2. read-back fast path


def test_read_back_is_one_export_per_pass_per_frame_and_never_per_pixel(editor):
    backend = start(editor)
    resolved = clip(frames=3, warmup=2)
    editor.readbacks.clear()
    frames = render(backend, resolved)
    assert [call for call, _, _ in editor.readbacks] == ["export_render_target"] * (2 * len(frames))
    assert sorted({fmt for _, fmt, _ in editor.readbacks}) == ["RTF_RGBA16F", "RTF_RGBA8"]
    # The pixels are the capture's, byte for byte (PNG is lossless, alpha ignored).
    capture = [c for c in editor.captures if c.source == "SCS_FINAL_COLOR_LDR"][-1]
    expected = fake_rgb(capture.location, capture.rotation, capture.fov, editor._environment_state(), 32, 24)
    assert np.array_equal(frames[-1].passes["rgb"], expected)
    backend.close()


def test_the_fake_models_raw_reads_like_the_engine(editor):
    unreal = editor.module

    def reads():
        world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
        target = unreal.RenderingLibrary.create_render_target2d(world, 2, 1, unreal.TextureRenderTargetFormat.RTF_RGBA16F)
        object.__getattribute__(target, "_store")(np.array([[100.0, 300.0]]))
        raw = unreal.RenderingLibrary.read_render_target_raw(world, target, False)
        scaled = unreal.RenderingLibrary.read_render_target_raw(world, target, True)
        none_world = unreal.RenderingLibrary.create_render_target2d(None, 2, 1)
        return [c.r for c in raw], [c.r for c in scaled], none_world

    raw, scaled, none_world = editor.run_on_game_thread(reads)
    assert raw == [100.0, 300.0]  # normalize=False: as stored
    assert scaled[1] <= 1.0 and scaled != raw  # normalize=True: rescaled, not centimetres
    assert none_world is None  # CreateRenderTarget2D returns nullptr without a world


# ------------------------------------------------------------------------------ 3. view state and exposure


def test_captures_persist_their_view_state_so_warm_up_frames_count(editor):
    backend = start(editor)
    frames = render(backend, clip(frames=3, warmup=2))
    colour = [c for c in editor.captures if c.source == "SCS_FINAL_COLOR_LDR"]
    assert [c.history for c in colour] == [0, 1, 2, 3, 4]  # warm-up 0, 1; frames see 2, 3, 4 captures of history
    components = [editor.component_props(component) for component, _ in backend._scene.captures.values()]
    assert len(components) == 2 and len(editor.actors_of(SceneCapture2D)) == 2
    assert all(props["always_persist_rendering_state"] for props in components)
    assert all(not props["capture_every_frame"] for props in components)
    assert frames[0].passes["rgb"].max() > 0
    backend.close()


def test_without_persisted_state_every_capture_starts_over_and_is_under_exposed(editor):
    """The fake's model of the engine behaviour the fix avoids."""
    backend = start(editor)
    backend.open(clip(frames=2, warmup=2))

    def drop_state():
        for name, (component, _) in backend._scene.captures.items():
            component.set_editor_property("always_persist_rendering_state", False)

    editor.run_on_game_thread(drop_state)
    editor.captures.clear()
    frames = list(backend.frames(0, 2))
    assert {c.history for c in editor.captures} == {0}
    capture = [c for c in editor.captures if c.source == "SCS_FINAL_COLOR_LDR"][-1]
    bright = fake_rgb(capture.location, capture.rotation, capture.fov, editor._environment_state(), 32, 24)
    assert np.array_equal(frames[-1].passes["rgb"], (bright * UNADAPTED_GAIN).astype(np.uint8))
    backend.close()


def test_a_fixed_exposure_needs_no_warm_up(editor):
    plain, fixed = start(editor), None
    dark = render(plain, clip(frames=1, warmup=0))[0].passes["rgb"]
    plain.close()
    fixed = start(editor, UnrealBackendConfig(exposure_ev100=1.5))
    lit = render(fixed, clip(frames=1, warmup=0))[0].passes["rgb"]
    settings = editor.component_props(fixed._scene.captures["rgb"][0])["post_process_settings"]
    assert settings.manual_exposure() and settings.auto_exposure_bias == 1.5
    assert not settings.auto_exposure_apply_physical_camera_exposure
    assert np.array_equal(dark, (lit * UNADAPTED_GAIN).astype(np.uint8))  # auto exposure without warm-up: dark
    fixed.close()


# ------------------------------------------------------------------------------ 4. background throttle


def test_the_backend_stops_the_background_throttle(editor):
    assert editor.tick_hz() == pytest.approx(4.0)  # a headless editor is never the foreground window
    start(editor)
    assert editor.tick_hz() == pytest.approx(120.0)
    assert editor.cvars["t.IdleWhenNotForeground"] == "0"
    assert editor.performance_settings._props["throttle_cpu_when_not_foreground"] is False


def test_idle_when_not_foreground_stops_ticks_entirely(editor):
    editor.cvars["t.IdleWhenNotForeground"] = "1"
    assert editor.tick_hz() == 0.0
    start(editor)  # the backend turns it off again
    assert editor.tick_hz() > 0


def test_launch_command_carries_the_throttle_flags(tmp_path):
    from unreal_bridge.unreal.launch_editor import editor_command, main

    command = editor_command(tmp_path / "UnrealEditor", tmp_path / "Proj" / "Proj.uproject", port=50052)
    assert "-RenderOffScreen" in command and "-unattended" in command and "-NullRHI" not in command
    assert "-ini:EditorSettings:[/Script/UnrealEd.EditorPerformanceSettings]:bThrottleCPUWhenNotForeground=False" in command
    assert '-ExecCmds="t.IdleWhenNotForeground 0"' in command
    assert command[-1].startswith('-ExecutePythonScript="') and "--port 50052" in command[-1]
    assert "WorldloomBridge/Content/Python/Lib/site-packages/unreal_bridge/unreal/startup.py" in command[-1]
    assert main(["--editor", "x", "--project", str(tmp_path / "Proj")]) == 2  # not a .uproject


def test_gc_and_save_hitches_skip_ticks_without_breaking_frame_pacing(editor):
    backend = start(editor)
    resolved = clip(frames=4, warmup=1)
    backend.open(resolved)
    frames = []
    for frame in backend.frames(0, 4):
        frames.append(frame)
        if frame.index == 1:
            editor.hitch(0.2, "save")  # the game thread is busy; no tick callbacks meanwhile
    assert ("save", 0.2) in editor.hitches
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.sim_time for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    for frame in frames:
        assert np.allclose(frame.camera_to_world, np.asarray(resolved["poses"][frame.index]).reshape(4, 4), atol=1e-9)
    backend.close()


# ------------------------------------------------------------------------------ 5. dependency install: see tests/test_unreal_requirements.py
# ------------------------------------------------------------------------------ 6. Movie Render Queue


@pytest.mark.parametrize("width, height", [(48, 24), (24, 32)], ids=["2:1", "3:4"])
def test_mrq_filmback_matches_a_non_16_9_output_so_nothing_is_letterboxed(editor, tmp_path, width, height):
    backend = start(editor, UnrealBackendConfig(capture="movie_render_queue", cinematic_dir=tmp_path))
    resolved = clip(width=width, height=height, frames=2, warmup=1, passes="[rgb]")
    frames = render(backend, resolved)
    cine = editor.component_props(backend._scene.camera._components[0])
    assert cine["constrain_aspect_ratio"]
    assert cine["filmback"].sensor_height == pytest.approx(cine["filmback"].sensor_width * height / width)
    fov = coords.horizontal_fov_deg(float(plan_for_editor(resolved).intrinsics[0, 0]), width)
    for frame in frames:
        location, rotator = coords.opencv_pose_to_unreal(np.asarray(resolved["poses"][frame.index]).reshape(4, 4))
        expected = fake_rgb(Vector(*location), Rotator(*rotator), round(fov, 6), editor._environment_state(), width, height)
        assert np.array_equal(frame.passes["rgb"], expected)  # no bars, not under-exposed (render warm-up ran)
    backend.close()


def test_mrq_with_a_16_9_filmback_letterboxes_in_the_fake():
    """The fake's model of the bug: a 16:9 filmback into a 4:3 output gets black bars."""
    from fake_unreal import _with_bars

    image = np.full((24, 32, 3), 200, np.uint8)
    barred = _with_bars(image, 16 / 9)
    assert barred[0].max() == 0 and barred[-1].max() == 0 and barred[12].min() == 200


def test_mrq_keys_channels_by_name_not_by_position(editor, tmp_path):
    editor.transform_channel_order = [f"{g}.{a}" for g in ("Scale", "Rotation", "Location") for a in "ZYX"]
    backend = start(editor, UnrealBackendConfig(capture="movie_render_queue", cinematic_dir=tmp_path))
    resolved = clip(frames=2, warmup=1, passes="[rgb]")
    frames = render(backend, resolved)
    fov = coords.horizontal_fov_deg(float(plan_for_editor(resolved).intrinsics[0, 0]), 32)
    location, rotator = coords.opencv_pose_to_unreal(np.asarray(resolved["poses"][1]).reshape(4, 4))
    expected = fake_rgb(Vector(*location), Rotator(*rotator), round(fov, 6), editor._environment_state(), 32, 24)
    assert np.array_equal(frames[1].passes["rgb"], expected)
    backend.close()


# ------------------------------------------------------------------------------ the fake's other corrections


def test_slate_handle_is_an_object_and_unregisters(editor):
    handle = editor.run_on_game_thread(lambda: editor.module.register_slate_post_tick_callback(lambda dt: None))
    assert not isinstance(handle, int)
    editor.run_on_game_thread(lambda: editor.module.unregister_slate_post_tick_callback(handle))
    assert editor.callbacks == {}


def test_attach_to_actor_honours_its_rules(editor):
    unreal = editor.module

    def attach(rule_name):
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        parent = actors.spawn_actor_from_class(unreal.CineCameraActor, Vector(100.0, 0.0, 0.0), Rotator(0.0, 0.0, 90.0))
        child = actors.spawn_actor_from_class(unreal.SceneCapture2D, Vector(0.0, 50.0, 0.0), Rotator(0.0, 0.0, 0.0))
        rule = getattr(unreal.AttachmentRule, rule_name)
        child.attach_to_actor(parent, "", rule, rule, rule, False)
        location, rotation = child.get_actor_location(), child.get_actor_rotation()
        return (location.x, location.y, location.z), (rotation.roll, rotation.pitch, rotation.yaw)

    assert editor.run_on_game_thread(lambda: attach("SNAP_TO_TARGET")) == ((100.0, 0.0, 0.0), (0.0, 0.0, 90.0))
    location, rotation = editor.run_on_game_thread(lambda: attach("KEEP_WORLD"))
    assert np.allclose(location, (0.0, 50.0, 0.0), atol=1e-9) and np.allclose(rotation, (0.0, 0.0, 0.0), atol=1e-9)
    # KEEP_RELATIVE: the child's (0, 50, 0) becomes an offset in the parent's frame (yaw 90: +Y -> -X).
    location, rotation = editor.run_on_game_thread(lambda: attach("KEEP_RELATIVE"))
    assert np.allclose(location, (50.0, 0.0, 0.0), atol=1e-9) and np.allclose(rotation, (0.0, 0.0, 90.0), atol=1e-9)
    assert AttachmentRule.SNAP_TO_TARGET.name == "SNAP_TO_TARGET"


def test_structs_come_back_as_copies_and_values_have_no_invented_fields(editor):
    unreal = editor.module

    def edit_without_setting():
        actors = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
        cine = actors.spawn_actor_from_class(unreal.CineCameraActor, Vector()).get_cine_camera_component()
        filmback = cine.get_editor_property("filmback")
        filmback.sensor_height = 1.0  # a copy: the component keeps 13.365 until it is set back
        return cine.get_editor_property("filmback").sensor_height

    assert editor.run_on_game_thread(edit_without_setting) == pytest.approx(13.365)
    path = unreal.SoftObjectPath("/Game/X.X")
    assert path.export_text() == "/Game/X.X" and not hasattr(path, "path")
    assert not hasattr(unreal.MovieSceneObjectBindingID(), "guid")
    assert None in editor.dirty_levels  # spawning dirtied the (untitled) level


def test_unknown_collection_parameters_are_reported_not_sent(tmp_path):
    from fake_unreal import MaterialParameterCollection

    with FakeEditor(load_delay_s=0.0) as editor:
        editor.assets["/Game/Worldloom/MPC_Weather"] = MaterialParameterCollection("/Game/Worldloom/MPC_Weather", ("Cloudiness", "Fog"))
        backend = start(editor)
        backend.open(clip(frames=1, warmup=0))
        warnings = [message for kind, message in editor.log if kind == "warning"]
        assert any("'Rain'" in message for message in warnings) and any("'Wetness'" in message for message in warnings)
        assert not [message for kind, message in editor.log if kind == "error"]  # nothing the engine would reject
        assert set(editor.mpc_scalars()) == {"Cloudiness", "Fog"}
        backend.close()
