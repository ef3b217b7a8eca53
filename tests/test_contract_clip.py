"""contract.clip.ResolvedClip: the typed resolved clip every reader parses once (issue 10)."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from contract.clip import KINEMATIC_RIGS, ResolvedClip, plain
from contract.defaults import DEFAULT_FOV_DEG
from contract.errors import UserError
from contract.manifest import load_manifest, resolve_clip
from contract.manifest.schema import Motion

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "manifests" / "examples").glob("*.yaml"))


def _first_clip(path: Path) -> dict:
    manifest = load_manifest(path)
    return resolve_clip(manifest, manifest.scenes[0].name, 0)


def _first_clips() -> list[dict]:
    return [_first_clip(path) for path in EXAMPLES]


@pytest.mark.parametrize("document", _first_clips(), ids=[path.stem for path in EXAMPLES])
def test_every_example_parses_to_the_resolvers_own_arrays(document: dict) -> None:
    clip = ResolvedClip.parse(json.loads(json.dumps(document)))  # as it arrives over the wire
    actions = np.asarray(document["actions"]["per_frame"], dtype=np.float32)
    poses = None if document["poses"] is None else np.asarray(document["poses"], dtype=np.float64).reshape(-1, 4, 4)
    np.testing.assert_array_equal(clip.actions, actions)
    if poses is None:
        assert clip.poses is None and clip.camera.rig == "vehicle"
    else:
        np.testing.assert_array_equal(clip.poses, poses)
    assert clip.key == document["key"] and clip.sha256 == document["sha256"]
    assert clip.output.frames == document["output"]["frames"] and clip.passes == tuple(document["passes"])
    k = document["camera"]["intrinsics"]
    np.testing.assert_array_equal(clip.camera.intrinsics.matrix(), [[k["fx"], 0, k["cx"]], [0, k["fy"], k["cy"]], [0, 0, 1]])
    np.testing.assert_array_equal(clip.camera.start_pose.reshape(16), document["camera"]["start_camera_to_world"])
    assert clip.to_json() == document  # the document survives the typed view unchanged


def test_a_clip_without_its_rollout_is_rolled_out_once_with_the_resolvers_numbers() -> None:
    document = _first_clip(EXAMPLES[0])
    assert document["camera"]["rig"] in KINEMATIC_RIGS
    stripped = {key: value for key, value in document.items() if key != "poses"}
    rolled = ResolvedClip.parse(stripped).poses
    assert rolled is not None
    np.testing.assert_allclose(rolled, np.asarray(document["poses"]).reshape(-1, 4, 4), atol=1e-8)  # the resolver rounds to 1e-9 m


def test_missing_optional_fields_fall_back_to_the_schemas_defaults() -> None:
    document = copy.deepcopy(_first_clip(EXAMPLES[0]))
    del document["motion"]["speed_mps"], document["camera"]["intrinsics"]["fx"], document["environment"]
    clip = ResolvedClip.parse(document)
    assert clip.motion.speed_mps == Motion.model_fields["speed_mps"].default
    assert clip.camera.intrinsics.horizontal_fov_deg == pytest.approx(DEFAULT_FOV_DEG)
    assert clip.environment.fog == 0.0 and clip.environment.ambient is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(schema="worldloom.resolved_clip/0"), "'schema'"),
        (lambda d: d["output"].update(fps="fast"), "'output.fps' is 'fast', not a finite number"),
        (lambda d: d["output"].update(frames=10**12), "'output.frames' is 1000000000000; it must be a number in (0, 10000]"),
        (lambda d: d["camera"].update(rig="drone"), "'camera.rig' is 'drone'"),
        (lambda d: d["actions"].update(per_frame=[[0.0] * 8]), "'actions.per_frame' has 1 rows"),
        (lambda d: d["camera"].update(start_camera_to_world=[1.0] * 15), "'camera.start_camera_to_world' has 15 values"),
        (lambda d: d["environment"]["weather"].update(fog=2.0), "'environment.weather.fog' is 2.0"),
        (lambda d: d.update(passes=[]), "'passes'"),
        (lambda d: d["seeds"].update(world="0xff"), "'seeds.world'"),
        (lambda d: d.pop("world"), "'world' is missing"),
    ],
)
def test_a_bad_field_is_named_in_one_line(edit, field: str) -> None:
    document = copy.deepcopy(_first_clip(EXAMPLES[0]))
    edit(document)
    with pytest.raises(UserError) as error:
        ResolvedClip.parse(document)
    line = error.value.one_line()
    assert field in line and "\n" not in line and "fix:" in line


def test_the_clip_is_frozen_and_its_arrays_read_only() -> None:
    clip = ResolvedClip.parse(_first_clip(EXAMPLES[0]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip.key = "other"  # type: ignore[misc]
    for array in (clip.actions, clip.poses, clip.camera.start_pose, clip.camera.start_position):
        assert array is not None
        with pytest.raises(ValueError):
            array[0] = 0
    with pytest.raises(TypeError):
        clip.world["generator"] = "city"  # type: ignore[index]
    assert isinstance(plain(clip.world), dict)
    assert ResolvedClip.parse(clip) is clip  # parsing a parsed clip is free
