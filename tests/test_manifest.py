"""Scene manifests: examples validate, resolution is deterministic, randomisers are independent,
errors name the file, line and field, the CLI and the committed JSON Schema are current."""
from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.clip import ResolvedClip
import yaml

from contract.errors import UserError
from contract.manifest import (
    clip_sha256, derive_seed, load_manifest, resolve_clip, resolve_manifest, rollout_poses,
)
from pipeline.cli_manifest import schema_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))
REQUIRED_EXAMPLES = {"quickstart", "city_drive", "forest_walk", "physics_sandbox", "static_empty", "night_black"}


def example(name: str) -> Path:
    return REPO / "manifests" / "examples" / f"{name}.yaml"


def test_required_examples_exist() -> None:
    assert REQUIRED_EXAMPLES <= {path.stem for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_and_resolves(path: Path) -> None:
    manifest = load_manifest(path)
    resolved = resolve_manifest(manifest)
    assert len(resolved.clips) == sum(scene.clips for scene in manifest.scenes)
    keys = [clip["key"] for clip in resolved.clips]
    assert len(set(keys)) == len(keys) and all("." not in key for key in keys)
    for clip in resolved.clips:
        assert clip["schema"] == "worldloom.resolved_clip/1"
        assert clip["sha256"] == clip_sha256(clip)
        typed = ResolvedClip.parse(clip)
        actions, poses = typed.actions, typed.poses
        assert actions.shape == (manifest.output.frames, 8)
        if clip["camera"]["rig"] == "vehicle":
            assert poses is None and clip["camera"]["pose_source"] == "physics"
        else:
            assert poses.shape == (manifest.output.frames, 4, 4)
            np.testing.assert_allclose(poses[:, :3, :3] @ np.transpose(poses[:, :3, :3], (0, 2, 1)), np.broadcast_to(np.eye(3), poses[:, :3, :3].shape), atol=1e-8)
        json.dumps(clip, allow_nan=False)  # plain JSON, no numpy scalars, no NaN


def test_examples_cover_the_three_demonstrated_scenes() -> None:
    rigs = {name: {scene.camera.rig for scene in load_manifest(example(name)).scenes} for name in ("city_drive", "forest_walk", "physics_sandbox")}
    assert rigs["city_drive"] == {"vehicle"}
    assert rigs["forest_walk"] == {"first_person"}
    assert rigs["physics_sandbox"] <= {"orbit", "fixed"}
    worlds = {name: {scene.world.generator for scene in load_manifest(example(name)).scenes} for name in ("city_drive", "forest_walk", "physics_sandbox")}
    assert worlds == {"city_drive": {"city"}, "forest_walk": {"forest"}, "physics_sandbox": {"physics_sandbox"}}


def test_crafted_reject_examples_are_static_and_dark() -> None:
    still = resolve_manifest(example("static_empty")).clips[0]
    poses = np.asarray(still["poses"]).reshape(-1, 4, 4)
    assert still["world"]["generator"] == "empty" and still["camera"]["rig"] == "fixed"
    assert np.all(poses == poses[0]) and not np.any(still["actions"]["per_frame"])
    dark = resolve_manifest(example("night_black")).clips[0]
    assert dark["environment"]["sun"]["elevation_deg"] < -30 and dark["environment"]["ambient"] == 0.0


def test_resolving_twice_gives_the_same_hash_and_bytes() -> None:
    first = resolve_manifest(example("forest_walk"))
    second = resolve_manifest(example("forest_walk").read_text())
    assert first.sha256 == second.sha256
    assert json.dumps(first.to_json(), sort_keys=True) == json.dumps(second.to_json(), sort_keys=True)
    assert resolve_clip(load_manifest(example("forest_walk")), "dusk_wander", 2) == first.clips[5]


def test_hash_changes_with_the_seed_and_ignores_comments() -> None:
    text = example("quickstart").read_text()
    base = resolve_manifest(text)
    assert resolve_manifest("# a comment\n" + text).sha256 == base.sha256
    reseeded = resolve_manifest(text.replace("seed: 7", "seed: 8"))
    assert reseeded.sha256 != base.sha256
    assert reseeded.clips[0]["randomized"] != base.clips[0]["randomized"]


def test_clip_keys_and_sub_seeds_follow_the_contract() -> None:
    resolved = resolve_manifest(example("quickstart"))
    clip = resolved.clips[3]
    assert clip["key"] == f"{resolved.manifest_sha256[:12]}_grove_00001"
    for subsystem, value in clip["seeds"].items():
        digest = hashlib.sha256(f"7/grove/1/{subsystem}".encode()).digest()
        assert value == int.from_bytes(digest[:4], "big") & 0x7FFFFFFF == derive_seed(7, "grove", 1, subsystem)
    assert len({tuple(c["seeds"].values()) for c in resolved.clips}) == len(resolved.clips)


def _with_randomizer(path: Path, scene_index: int, field: str, distribution: dict) -> dict:
    data = yaml.safe_load(path.read_text())
    data["scenes"][scene_index].setdefault("randomize", {})[field] = distribution
    return data


@pytest.mark.parametrize(
    "field, distribution",
    [("environment.weather.rain", {"uniform": [0.0, 1.0]}), ("environment.weather.cloudiness", {"normal": {"mean": 0.5, "std": 0.2, "min": 0, "max": 1}}),
     ("world.params.terrain_roughness", {"choice": [0.1, 0.4]})],
)
def test_adding_a_randomiser_leaves_camera_path_and_other_draws_unchanged(field: str, distribution: dict) -> None:
    before = resolve_manifest(example("forest_walk"))
    after = resolve_manifest(load_manifest(_with_randomizer(example("forest_walk"), 1, field, distribution)))
    changed = 0
    for old, new in zip(before.clips, after.clips):
        assert new["actions"] == old["actions"]
        assert new["poses"] == old["poses"]
        assert new["camera"] == old["camera"]
        assert new["motion"] == old["motion"]
        assert new["seeds"] == old["seeds"]
        for path, value in old["randomized"].items():
            assert new["randomized"][path] == value
        changed += field in new["randomized"] and new["randomized"][field] != old.get("randomized", {}).get(field)
    assert changed == 3  # the new field is drawn for every dusk_wander clip


def test_randomised_values_are_written_out_and_applied() -> None:
    for clip in resolve_manifest(example("city_drive")).clips:
        randomized = clip["randomized"]
        assert clip["environment"]["weather"]["cloudiness"] == randomized["environment.weather.cloudiness"]
        assert clip["world"]["params"]["parked_vehicles"] == randomized["world.params.parked_vehicles"]
        assert isinstance(randomized["world.params.parked_vehicles"], int) and 4 <= randomized["world.params.parked_vehicles"] <= 16
        assert 5 <= clip["environment"]["sun"]["elevation_deg"] <= 70
        assert clip["camera"]["start"]["position"] == [float(v) for v in randomized["camera.start.position"]]


def test_poses_in_the_clip_equal_the_rollout_of_its_actions() -> None:
    for clip in resolve_manifest(example("forest_walk")).clips + resolve_manifest(example("physics_sandbox")).clips:
        typed = ResolvedClip.parse(clip)
        actions, poses = typed.actions, typed.poses
        camera, motion = clip["camera"], clip["motion"]
        rolled = rollout_poses(
            actions, np.asarray(camera["start_camera_to_world"]).reshape(4, 4), motion["speed_mps"], clip["output"]["fps"],
            rig=camera["rig"], orbit_target=camera.get("orbit_target"), sprint_multiplier=motion["sprint_multiplier"],
        )
        np.testing.assert_allclose(rolled, poses, atol=1e-8)


def test_intrinsics_from_fov_and_explicit() -> None:
    clip = resolve_manifest(example("quickstart")).clips[0]
    intrinsics = clip["camera"]["intrinsics"]
    assert intrinsics["cx"] == 80.0 and intrinsics["cy"] == 45.0  # (0, 0) is the corner of the top-left pixel
    assert intrinsics["fx"] == pytest.approx(80.0 / np.tan(np.radians(35.0)))
    data = yaml.safe_load(example("quickstart").read_text())
    data["scenes"][0]["camera"]["intrinsics"] = {"fx": 100.0, "fy": 90.0, "cx": 70.0, "cy": 40.0}
    explicit = resolve_clip(load_manifest(data), "street", 0)["camera"]["intrinsics"]
    assert explicit == {"fx": 100.0, "fy": 90.0, "cx": 70.0, "cy": 40.0, "width": 160, "height": 90}


# --------------------------------------------------------------------------- errors


def _error(text: str) -> str:
    with pytest.raises(UserError) as caught:
        load_manifest(text, source_name="bad.yaml")
    message = caught.value.one_line()
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("fov_deg: 70", "fov: 70", "bad.yaml:35: scenes[0].camera.intrinsics.fov: unknown field `fov`; fix: remove `fov` or rename it to `fov_deg`"),
        ("width: 160", "width: 161", "bad.yaml:13: output.width: 161 is odd; fix: use an even number"),
        ("generator: forest", "generator: ocean", "bad.yaml:48: scenes[1].world.generator: unknown generator 'ocean'; fix: use one of city"),
        ('actions: "w-8,lw-8"', 'actions: "w-8,q-3"', "bad.yaml:38: scenes[0].motion.actions: segment 2 'q-3' uses unknown key(s) 'q'"),
        ('actions: "w-8,lw-8"', 'actions: "w-80"', "scenes[0].motion.actions: the action string lasts 80 frames but the clip has 16; fix: shorten it"),
        ("fog: {uniform: [0.1, 0.5]}", "fog: {uniform: [0.1, 1.5]}", 'bad.yaml:60: scenes[1].randomize["environment.weather.fog"].uniform[1]: value 1.5'),
        ("environment.weather.fog:", "environment.weather.smog:", "has no field 'environment.weather.smog'"),
        ("environment.weather.fog:", "fog:", "bad.yaml:60: scenes[1].randomize.fog: 'fog' is not a field path; fix: write a dotted path"),
        ("seed: 7", "seed: seven", "bad.yaml:6: seed: 'seven' (str) is the wrong type; fix: write a whole number"),
        ("- name: grove", "- name: street", "bad.yaml:45: scenes[1].name: scene name 'street' is also used by scenes[0]"),
        ("crf: 23", "crf: 23\n  crf: 24", "bad.yaml:18: output.crf: key appears twice"),
        ("  fps: 8\n", "", "output.fps: required field `fps` is missing; fix: add `fps:`"),
        ("terrain_roughness: 0.0", "terrain_roughness: .nan", "scenes[1].world.params.terrain_roughness: nan is not a finite number"),
        ("blocks: 2,", "blocks: 2.5,", "bad.yaml:31: scenes[0].world.params.blocks: 2.5 (float) is the wrong type"),
        ("name: grove", "name: Grove.1", "scenes[1].name: 'Grove.1' does not match"),
        ("rig: first_person\n      start: {position: [0, -20", "rig: fixed\n      start: {position: [0, -20", "scenes[0].motion.policy: a fixed camera cannot follow a scripted policy"),
        ("policy: random_walk", "policy: waypoints", "scenes[1].motion.random_walk: random_walk is only used by policy random_walk"),
    ],
)
def test_errors_name_file_line_field_and_fix(old: str, new: str, expected: str) -> None:
    text = example("quickstart").read_text()
    assert old in text
    message = _error(text.replace(old, new, 1))
    assert expected in message
    assert "fix:" in message


@pytest.mark.parametrize("text, expected", [("a: [1, 2", "bad.yaml:1: YAML syntax error"), ("- 1\n- 2", "must be a mapping"), ("", "the manifest is empty"),
                                            ("version: 1\nname: x\nseed: 2001-13-45\n", "bad.yaml")])
def test_unreadable_yaml_is_a_user_error(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such manifest file"):
        load_manifest(tmp_path / "nope.yaml")


def test_unknown_scene_or_clip_index_is_a_user_error() -> None:
    manifest = load_manifest(example("quickstart"))
    with pytest.raises(UserError, match="no scene named 'nope'"):
        resolve_clip(manifest, "nope", 0)
    with pytest.raises(UserError, match="clip index 2 is outside scene 'street'"):
        resolve_clip(manifest, "street", 2)


# --------------------------------------------------------------------------- schema and CLI


def test_committed_json_schema_is_current() -> None:
    committed = (REPO / "manifests" / "schema.json").read_text()
    assert committed == schema_text(), "run `worldloom manifest schema` to regenerate manifests/schema.json"
    schema = json.loads(committed)
    assert schema["properties"]["version"]["const"] == 1
    assert {"version", "name", "seed", "output", "scenes"} <= set(schema["required"])


def test_cli_validate_and_resolve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    main(["manifest", "validate", str(example("quickstart")), str(example("physics_sandbox"))])
    out = capsys.readouterr().out
    assert out.count("ok ") == 2 and "quickstart, 2 scene(s), 4 clip(s)" in out
    target = tmp_path / "resolved.json"
    main(["manifest", "resolve", str(example("quickstart")), "--out", str(target)])
    written = json.loads(target.read_text())
    assert written["sha256"] == resolve_manifest(example("quickstart")).sha256
    assert not list(tmp_path.glob("*.partial"))
    main(["manifest", "resolve", str(example("quickstart")), "--scene", "grove", "--clip", "1"])
    assert json.loads(capsys.readouterr().out)["key"].endswith("_grove_00001")


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(example("quickstart").read_text().replace("fps: 8", "fps: 0"))
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "manifest", "validate", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:15: output.fps: 0 is out of range; fix: use a value >= 1" in lines[0]
    assert "Traceback" not in result.stderr


def test_manifest_wide_randomiser_applies_to_every_scene_and_scene_entry_wins() -> None:
    data = yaml.safe_load(example("quickstart").read_text())
    data["randomize"] = {"environment.weather.rain": {"uniform": [0.2, 0.4]}, "environment.weather.fog": {"choice": [0.9]}}
    clips = resolve_manifest(load_manifest(data)).clips
    assert all(0.2 <= clip["environment"]["weather"]["rain"] <= 0.4 for clip in clips)
    fog = {clip["scene"]: clip["environment"]["weather"]["fog"] for clip in clips}
    assert fog["street"] == 0.9 and 0.1 <= fog["grove"] <= 0.5  # grove's own fog randomiser wins
    data["randomize"] = {"world.params.tree_density": {"uniform": [0.1, 0.2]}}  # street is a city: no such field
    with pytest.raises(UserError, match=r'randomize\["world.params.tree_density"\]: scene \'street\' has no field'):
        load_manifest(data)


def test_unreal_level_world() -> None:
    data = yaml.safe_load(example("quickstart").read_text())
    data["scenes"][0]["world"] = {"level": "/Game/Maps/CityPark"}
    with pytest.raises(UserError, match="scenes\\[0\\].world.level: an Unreal level needs the unreal backend"):
        load_manifest(data)
    data["renderer"] = {"backend": "unreal", "endpoints": ["10.0.0.5:50051"]}
    clip = resolve_clip(load_manifest(data), "street", 0)
    assert clip["world"] == {"level": "/Game/Maps/CityPark"}
    data["renderer"]["endpoints"] = ["no-port"]
    with pytest.raises(UserError, match=r"renderer.endpoints\[0\]"):
        load_manifest(data)
