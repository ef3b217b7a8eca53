"""The procedural (PyBullet + TinyRenderer) backend: worlds, camera model, passes, determinism.

Clips are resolved by the real manifest resolver from small manifest dicts at 160x90.
"""
from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pybullet as p
import pytest

from contract.manifest import resolve_clip, rollout_poses
from unreal_bridge.backend import RenderBackend, RenderedFrame
from unreal_bridge.wire import PASS_DTYPES
from unreal_bridge.procedural import ProceduralBackend
from unreal_bridge.procedural.camera import intrinsics_matrix, linear_depth, look_at, project, projection_matrix, view_matrix
from unreal_bridge.procedural.ids import CLASS_CODES, INSTANCES_PER_CLASS

W, H = 160, 90

WORLDS = {
    "empty": {"generator": "empty"},
    "city": {"generator": "city", "params": {"blocks": 2, "block_size_m": 30, "building_height_m": [6, 20], "parked_vehicles": 3}},
    "forest": {"generator": "forest", "params": {"tree_density": 0.05, "area_m": 40}},
    "terrain": {"generator": "terrain", "params": {"size_m": 60, "height_scale_m": 6}},
    "physics_sandbox": {"generator": "physics_sandbox", "params": {"dominoes": 8, "stacks": 2, "stack_height": 3, "falling_objects": 3, "rolling_objects": 2}},
}
# A class each world must show in its first frames (besides sky/ground).
EXPECTED_CLASS = {"city": "building", "forest": "tree", "terrain": "terrain", "physics_sandbox": "prop", "empty": "ground"}


def make_clip(world: dict, *, frames: int = 6, camera: dict | None = None, motion: dict | None = None,
              environment: dict | None = None, passes=("rgb", "depth", "segmentation"), warmup: int = 0) -> dict:
    """A resolved clip from a one-scene manifest dict, through the real resolver."""
    manifest = {
        "version": 1, "name": "proc_test", "seed": 11,
        "output": {"width": W, "height": H, "fps": 12, "frames": frames},
        "passes": list(passes),
        "simulation": {"substeps": 2, "warmup_frames": warmup},
        "scenes": [{
            "name": "s",
            "world": world,
            "camera": camera or {"rig": "first_person", "start": {"position": [0, -6, 0], "yaw_deg": 0, "pitch_deg": -5}},
            "motion": motion or {"policy": "scripted", "actions": f"w-{frames}"},
            "environment": environment or {"sun": {"elevation_deg": 40, "azimuth_deg": 135}},
        }],
    }
    return resolve_clip(manifest, "s", 0)


def render(clip: dict, start: int = 0, end: int | None = None, **kwargs) -> list[RenderedFrame]:
    backend = ProceduralBackend()
    backend.open(clip)
    try:
        return list(backend.frames(start, clip["output"]["frames"] if end is None else end, **kwargs))
    finally:
        backend.close()


def frame_digest(frames: list[RenderedFrame]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(f.camera_to_world.tobytes())
        for name in sorted(f.passes):
            h.update(name.encode())
            h.update(np.ascontiguousarray(f.passes[name]).tobytes())
    return h.hexdigest()


ORBIT = {"rig": "orbit", "start": {"position": [0, -6, 3]}, "orbit_target": [0, 0, 0.4]}


def test_backend_satisfies_the_protocol():
    backend = ProceduralBackend()
    assert isinstance(backend, RenderBackend)
    assert backend.name == "procedural" and "pybullet" in backend.engine_version
    assert set(backend.passes) == {"rgb", "depth", "segmentation"}
    assert {"deterministic", "resume", "vehicle_physics", "weather"} <= set(backend.capabilities)


def test_projection_matches_pinhole():
    """A known world point, projected with K (off-centre principal point) and pose, lands on the
    pixel the renderer draws it in, and the depth pass there equals its planar z."""
    client = p.connect(p.DIRECT)
    try:
        K = intrinsics_matrix(95.0, 120.0, 63.7, 51.2)  # off-centre cx, cy; fx != fy
        pose = look_at([0.7, -4.0, 1.9], [0.0, 0.0, 0.6])
        target = np.array([0.9, 0.8, 0.3])
        marker_half = 0.06
        visual = p.createVisualShape(p.GEOM_SPHERE, radius=marker_half, physicsClientId=client)
        marker = p.createMultiBody(0, -1, visual, basePosition=target.tolist(), physicsClientId=client)
        near, far = 0.05, 100.0
        _, _, _, depth_buffer, mask = p.getCameraImage(
            W, H, view_matrix(pose), projection_matrix(K, W, H, near, far), renderer=p.ER_TINY_RENDERER, physicsClientId=client)
        mask = np.reshape(mask, (H, W))
        depth = linear_depth(np.reshape(depth_buffer, (H, W)), near, far)
        u, v, z = project(K, pose, target)
        col, row = int(np.floor(u)), int(np.floor(v))  # (0, 0) is the top-left corner of pixel (0, 0)
        assert 0 <= col < W and 0 <= row < H
        assert mask[row, col] == marker
        ys, xs = np.nonzero(mask == marker)
        # The marker's pixels are centred on the projection (within half a pixel plus rasterisation).
        assert abs((xs + 0.5).mean() - u) < 0.75 and abs((ys + 0.5).mean() - v) < 0.75
        # The sphere's front surface is nearer than its centre by at most its radius.
        assert z - marker_half - 0.02 < depth[row, col] < z
        assert depth[0, 0] == pytest.approx(far)  # background sits at the far plane
    finally:
        p.disconnect(physicsClientId=client)


def test_axis_aligned_face_covers_exactly_the_projected_pixels():
    """A wall facing the camera: the set of covered pixel centres equals the projected rectangle."""
    client = p.connect(p.DIRECT)
    try:
        K = intrinsics_matrix(90.0, 110.0, 70.3, 38.6)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = [1, 0, 0], [0, 0, -1], [0, 1, 0], [0.2, -1.0, 1.0]
        x0, x1, z0, z1 = -0.5, 1.2, 0.7, 1.7
        visual = p.createVisualShape(p.GEOM_BOX, halfExtents=[(x1 - x0) / 2, 0.05, (z1 - z0) / 2], physicsClientId=client)
        wall = p.createMultiBody(0, -1, visual, basePosition=[(x0 + x1) / 2, 4.05, (z0 + z1) / 2], physicsClientId=client)
        _, _, _, depth_buffer, mask = p.getCameraImage(
            W, H, view_matrix(pose), projection_matrix(K, W, H, 0.05, 100.0), renderer=p.ER_TINY_RENDERER, physicsClientId=client)
        covered = np.reshape(mask, (H, W)) == wall
        u0, v0, _ = project(K, pose, [x0, 4.0, z1])
        u1, v1, _ = project(K, pose, [x1, 4.0, z0])
        uu, vv = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        expected = (uu > u0) & (uu < u1) & (vv > v0) & (vv < v1)
        assert expected.sum() > 500
        assert np.array_equal(covered, expected)
        depth = linear_depth(np.reshape(depth_buffer, (H, W)), 0.05, 100.0)
        np.testing.assert_allclose(depth[covered], 5.0, rtol=1e-4)  # planar z, not ray distance
    finally:
        p.disconnect(physicsClientId=client)


@pytest.mark.parametrize("name", list(WORLDS))
def test_every_generator_renders(name):
    camera = ORBIT if name == "physics_sandbox" else None
    clip = make_clip(WORLDS[name], frames=3, camera=camera, motion=None if camera is None else {"policy": "static"})
    frames = render(clip)
    assert [f.index for f in frames] == [0, 1, 2]
    for f in frames:
        assert set(f.passes) == {"rgb", "depth", "segmentation"}
        for pass_name, array in f.passes.items():
            assert array.dtype == PASS_DTYPES[pass_name]
        assert f.passes["rgb"].shape == (H, W, 3)
        depth = f.passes["depth"]
        assert depth.shape == (H, W) and np.isfinite(depth).all() and (depth > 0).all()
        assert depth.max() <= clip["camera"]["far_m"] + 1e-3
        assert f.passes["rgb"].std() > 5.0  # not a flat image
        np.testing.assert_array_equal(f.camera_to_world, np.asarray(clip["poses"][f.index]).reshape(4, 4))
        np.testing.assert_allclose(f.intrinsics[0, 2], clip["camera"]["intrinsics"]["cx"])
    seg = frames[-1].passes["segmentation"]
    ids = np.unique(seg)
    assert len(ids) >= 2
    assert CLASS_CODES[EXPECTED_CLASS[name]] in set(ids // INSTANCES_PER_CLASS)
    # Sky (id 0) is exactly where depth is at the far plane.
    far_plane = frames[-1].passes["depth"] >= clip["camera"]["far_m"] * 0.999
    np.testing.assert_array_equal(seg == 0, far_plane)


@pytest.mark.timeout(120)
def test_same_clip_gives_identical_bytes_in_two_processes():
    world = WORLDS["physics_sandbox"]
    clip = make_clip(world, frames=8, camera=ORBIT, motion={"policy": "scripted", "actions": "l-8"},
                     environment={"sun": {"elevation_deg": 20, "azimuth_deg": 200}, "weather": {"rain": 0.6, "fog": 0.2, "wetness": 0.5}})
    first = frame_digest(render(clip))
    assert first == frame_digest(render(copy.deepcopy(clip)))  # two backends, one process
    script = (
        "import json,sys\n"
        "from tests.test_procedural_backend import render, frame_digest\n"
        "print(frame_digest(render(json.loads(sys.stdin.read()))))\n"
    )
    repo_root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(clip), capture_output=True, text=True,
                         check=True, timeout=120, cwd=repo_root)
    assert out.stdout.strip().splitlines()[-1] == first


def test_resume_from_k_equals_uninterrupted_render():
    """Dominoes and falling objects move: frame k must not depend on where rendering started."""
    clip = make_clip(WORLDS["physics_sandbox"], frames=10, camera=ORBIT, motion={"policy": "static"}, warmup=3)
    full = render(clip)
    backend = ProceduralBackend()
    backend.open(clip)
    try:
        resumed = list(backend.frames(6, 10))
        again = list(backend.frames(2, 4))  # going back rebuilds from frame 0
    finally:
        backend.close()
    assert frame_digest(resumed) == frame_digest(full[6:])
    assert frame_digest(again) == frame_digest(full[2:4])
    # Physics ran before the resume point (the camera holds still, the scene does not), so a
    # backend that skipped simulating frames 0-5 would render different frames 6-9.
    assert not np.array_equal(full[0].passes["segmentation"], full[5].passes["segmentation"])


def test_holding_w_moves_first_person_camera_along_its_own_z():
    clip = make_clip(WORLDS["empty"], frames=6, camera={"rig": "first_person", "start": {"position": [1, 2, 0], "yaw_deg": 30}},
                     motion={"policy": "scripted", "actions": "w-6"})
    frames = render(clip, passes=("depth",))
    poses = np.stack([f.camera_to_world for f in frames])
    start = np.asarray(clip["camera"]["start_camera_to_world"]).reshape(4, 4)
    expected = rollout_poses(np.asarray(clip["actions"]["per_frame"], np.float32), start, clip["motion"]["speed_mps"], 12)
    np.testing.assert_allclose(poses, expected, atol=1e-8)
    step = 1.4 / 12
    for prev, cur in zip([start] + list(poses[:-1]), poses):
        np.testing.assert_allclose(cur[:3, 3] - prev[:3, 3], step * cur[:3, 2], atol=1e-7)
    assert set(frames[0].passes) == {"depth"}  # only the requested pass comes back


def _vehicle_clip(actions: str, frames: int = 24, model: str = "sedan") -> dict:
    world = {"generator": "city", "params": {"blocks": 2, "block_size_m": 30, "parked_vehicles": 0}}
    camera = {"rig": "vehicle", "vehicle_model": model, "start": {"position": [0, -10, 0], "yaw_deg": 0}, "height": 1.4}
    return make_clip(world, frames=frames, camera=camera, motion={"policy": "scripted", "actions": actions, "speed_mps": 6.0})


def _positions(frames: list[RenderedFrame]) -> np.ndarray:
    return np.stack([f.camera_to_world[:3, 3] for f in frames])


def test_vehicle_driven_forward_moves_straight_and_idle_stays():
    driven = render(_vehicle_clip("w-24"), passes=("depth",))
    idle = render(_vehicle_clip("n-24"), passes=("depth",))
    path = _positions(driven)
    travel = path[-1] - path[0]
    assert travel[1] > 3.0  # compass yaw 0 faces +Y; ~2.5 m/s^2 for 2 s from standstill
    assert abs(travel[0]) < 0.1 and np.all(np.diff(path[:, 1]) > 0)  # straight ahead, always forward
    assert np.ptp(_positions(idle), axis=0).max() < 0.02
    # The camera is where it was asked to be, looks where the car goes and stays upright.
    assert driven[0].camera_to_world[2, 3] == pytest.approx(1.4, abs=0.05)
    assert driven[-1].camera_to_world[1, 2] > 0.99 and driven[-1].camera_to_world[2, 1] < -0.99
    # Steering right turns the heading clockwise (towards +X); braking shortens the trip.
    steered = render(_vehicle_clip("w-6,dw-18"), passes=("depth",))
    assert steered[-1].camera_to_world[0, 2] > 0.3 and steered[-1].camera_to_world[0, 3] > 1.0
    braked = render(_vehicle_clip("w-12,s-12"), passes=("depth",))
    assert braked[-1].camera_to_world[1, 3] < path[-1, 1] - 1.0


def test_pybullet_data_racecar_drives_forward():
    frames = render(_vehicle_clip("w-24", model="racecar"), passes=("depth",))
    travel = _positions(frames)[-1] - _positions(frames)[0]
    assert travel[1] > 3.0 and abs(travel[0]) < 0.5 * travel[1]


def test_moonless_night_is_near_black_and_day_is_not():
    world = WORLDS["city"]
    night = make_clip(world, frames=1, environment={"sun": {"elevation_deg": -30, "azimuth_deg": 0}, "ambient": 0.0}, passes=("rgb",))
    day = make_clip(world, frames=1, environment={"sun": {"elevation_deg": 45, "azimuth_deg": 135}}, passes=("rgb",))
    assert render(night)[0].passes["rgb"].mean() < 4.0
    assert render(day)[0].passes["rgb"].mean() > 60.0
    # Without an explicit ambient the city keeps some windows lit after dark: dark, not black.
    lit = make_clip(world, frames=1, environment={"sun": {"elevation_deg": -30, "azimuth_deg": 0}}, passes=("rgb",))
    lit_rgb = render(lit)[0].passes["rgb"]
    assert lit_rgb.mean() < 30.0 and (lit_rgb.max(axis=-1) > 120).sum() > 20


def test_weather_changes_pixels_deterministically():
    world = WORLDS["city"]
    base = {"sun": {"elevation_deg": 45, "azimuth_deg": 135}}
    clear = render(make_clip(world, frames=2, environment=base))
    foggy = render(make_clip(world, frames=2, environment={**base, "weather": {"fog": 1.0}}))
    rainy = render(make_clip(world, frames=2, environment={**base, "weather": {"rain": 1.0}}))
    wet = render(make_clip(world, frames=2, environment={**base, "weather": {"wetness": 1.0}}))
    # Fog pulls far pixels towards one colour: the far half of the image loses contrast.
    far = clear[0].passes["depth"] > 30
    assert foggy[0].passes["rgb"][far].std() < 0.5 * clear[0].passes["rgb"][far].std()
    # Rain streaks differ frame to frame, wet ground is darker; geometry passes are unchanged.
    assert not np.array_equal(rainy[0].passes["rgb"], rainy[1].passes["rgb"])
    road = (clear[0].passes["segmentation"] // INSTANCES_PER_CLASS) == CLASS_CODES["road"]
    assert wet[0].passes["rgb"][road].mean() < 0.8 * clear[0].passes["rgb"][road].mean()
    np.testing.assert_array_equal(foggy[0].passes["depth"], clear[0].passes["depth"])


def test_low_sun_is_warm():
    world = WORLDS["city"]
    dusk = render(make_clip(world, frames=1, environment={"sun": {"elevation_deg": 4, "azimuth_deg": 180}}, passes=("rgb", "segmentation")))[0]
    noon = render(make_clip(world, frames=1, environment={"sun": {"elevation_deg": 70, "azimuth_deg": 180}}, passes=("rgb", "segmentation")))[0]
    lit = dusk.passes["segmentation"] > 0
    warm = dusk.passes["rgb"][lit].astype(float)
    cool = noon.passes["rgb"][lit].astype(float)
    assert (warm[:, 0] - warm[:, 2]).mean() > (cool[:, 0] - cool[:, 2]).mean() + 5


def test_unreal_level_is_rejected_with_a_clear_message():
    clip = make_clip(WORLDS["empty"], frames=1)
    clip["world"] = {"level": "/Game/Maps/City"}
    from contract.errors import UserError

    with pytest.raises(UserError, match="world.level"):
        ProceduralBackend().open(clip)


def test_two_backends_interleaved_in_one_process_do_not_interfere():
    """Every PyBullet call carries its client id: stepping one world never moves the other."""
    sandbox = make_clip(WORLDS["physics_sandbox"], frames=6, camera=ORBIT, motion={"policy": "static"})
    city = make_clip(WORLDS["city"], frames=6)
    alone = frame_digest(render(sandbox)), frame_digest(render(city))
    a, b = ProceduralBackend(), ProceduralBackend()
    a.open(sandbox)
    b.open(city)
    try:
        got_a, got_b = [], []
        for frame_a, frame_b in zip(a.frames(0, 6), b.frames(0, 6)):
            got_a.append(frame_a)
            got_b.append(frame_b)
    finally:
        a.close()
        b.close()
    assert (frame_digest(got_a), frame_digest(got_b)) == alone


def test_terrain_from_a_pybullet_data_heightmap_png():
    world = {"generator": "terrain", "params": {"heightmap": "heightmaps/wm_height_out.png", "size_m": 80, "height_scale_m": 10}}
    clip = make_clip(world, frames=2, camera={"rig": "first_person", "start": {"position": [0, 0, 0], "yaw_deg": 45, "pitch_deg": -10}})
    frame = render(clip)[-1]
    terrain = (frame.passes["segmentation"] // INSTANCES_PER_CLASS) == CLASS_CODES["terrain"]
    assert terrain.mean() > 0.2
    # The walker stands on the (flattened) surface: the pixel straight below the horizon line is near.
    assert frame.passes["depth"][-1].max() < 20.0
    missing = copy.deepcopy(clip)
    missing["world"]["params"]["heightmap"] = "no/such/heightmap.png"
    from contract.errors import UserError

    with pytest.raises(UserError, match="world.params.heightmap"):
        ProceduralBackend().open(missing)


def test_flat_heightfield_ground_is_shaded_evenly():
    """PyBullet's own heightfield visual shades half the field darker along a straight seam in
    TinyRenderer; the backend's mesh visual must not (left and right ground halves match)."""
    world = {"generator": "forest", "params": {"tree_density": 0.0, "area_m": 60, "terrain_roughness": 0.0}}
    frame = render(make_clip(world, frames=1, passes=("rgb",)))[0]
    bottom = frame.passes["rgb"][-12:].astype(float)
    left, right = bottom[:, : W // 2].mean(), bottom[:, W // 2:].mean()
    assert abs(left - right) < 6.0
