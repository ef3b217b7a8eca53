"""Each contract constant is defined once (issue 10's "grep finds each ... defined once"), read with `ast`.

- the sample's member names (`"poses.npy"`, ...) appear as string literals only in contract/sample.py;
- the action layout (the key tuple, the channel indices, its size) is assigned only there;
- the defaults several parts fall back to (start height, FOV, sun angles, motion, the unknown camera) are
  assigned only in contract/defaults.py (other modules import them), the rigs whose poses are a rollout
  only in contract/clip.py.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contract import sample

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "model", "unreal_bridge", "pipeline", "training")
GENERATED = REPO / "unreal_bridge" / "protos" / "worldloom"

MEMBER_NAMES = [sample.POSES, sample.INTRINSICS, sample.ACTIONS, sample.DEPTH, sample.SEGMENTATION,
                sample.CLIP_EMBEDDING, sample.LATENTS]  # `mp4` and `json` are ordinary words too
LAYOUT_NAMES = {"ACTION_KEYS", "ACTION_DIM", "KEY_CHANNELS", "LOOK_CHANNELS",
                "FORWARD", "BACK", "LEFT", "RIGHT", "JUMP", "SPRINT", "YAW", "PITCH"}
OWNERS = {
    "contract/sample.py": LAYOUT_NAMES,
    "contract/clip.py": {"KINEMATIC_RIGS"},
}


def _sources() -> list[tuple[str, ast.Module]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if GENERATED in path.parents:
                continue
            found.append((path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), filename=str(path))))
    return found


SOURCES = _sources()


def _module_assignments(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    names.add(leaf.id)
    return names


@pytest.mark.parametrize("member", MEMBER_NAMES)
def test_member_names_are_spelled_only_in_contract_sample(member: str) -> None:
    spelled = [rel for rel, tree in SOURCES
               if any(isinstance(n, ast.Constant) and n.value == member for n in ast.walk(tree))]
    assert spelled == ["contract/sample.py"], f"{member!r} is spelled in {spelled}; import it from contract.sample"


def test_the_action_layout_and_the_rig_set_are_assigned_by_their_owner_only() -> None:
    problems = []
    for rel, tree in SOURCES:
        assigned = _module_assignments(tree)
        for owner, names in OWNERS.items():
            if rel != owner and assigned & names:
                problems.append(f"{rel} assigns {sorted(assigned & names)} (owner: {owner})")
        keys = [n for n in ast.walk(tree) if isinstance(n, ast.Tuple | ast.List)
                and [getattr(e, "value", None) for e in n.elts] == list(sample.ACTION_KEYS)]
        if keys and rel != "contract/sample.py":
            problems.append(f"{rel}:{keys[0].lineno} spells the action keys; use contract.sample.ACTION_KEYS")
    assert not problems, "\n".join(problems)


def test_the_shared_defaults_are_assigned_only_in_contract_defaults() -> None:
    owned = _module_assignments(next(tree for rel, tree in SOURCES if rel == "contract/defaults.py"))
    assert {"DEFAULT_CAMERA_HEIGHT_M", "DEFAULT_FOV_DEG", "DEFAULT_SUN_ELEVATION_DEG", "DEFAULT_SUN_AZIMUTH_DEG",
            "DEFAULT_SPEED_MPS", "UNKNOWN_CAMERA_FOV_DEG"} <= owned
    problems = [f"{rel} assigns {sorted(_module_assignments(tree) & owned)}" for rel, tree in SOURCES
                if rel != "contract/defaults.py" and _module_assignments(tree) & owned]
    assert not problems, "\n".join(problems)
