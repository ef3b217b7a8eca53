"""The small manifest the conformance suite renders when the user gives none.

Tiny on purpose (32x24, 6 frames, rgb + depth) so a check run takes seconds. It uses the
procedural `empty` world; an Unreal server needs a manifest naming one of its levels
(`--manifest my_level.yaml`, see docs/unreal.md). The camera walks forward and turns, so every
frame has a different pose and "pose from another tick" is visible.
"""
from __future__ import annotations

BUILTIN_MANIFEST = """\
version: 1
name: conformance
description: worldloom render-server check probe (tiny, fast)
seed: 1234
output: {width: 32, height: 24, fps: 10, frames: 6}
passes: [rgb, depth]
scenes:
  - name: probe
    world: {generator: empty}
    camera: {rig: first_person, intrinsics: {fov_deg: 70.0}}
    motion: {policy: scripted, actions: "w-2,wl-2,wi-2"}
"""

# Invalid on purpose: a YAML syntax error, and a well-formed manifest with an impossible value.
BROKEN_YAML = "version: 1\nname: [unclosed\n"
BAD_FIELD_MANIFEST = BUILTIN_MANIFEST.replace("frames: 6", "frames: -3")
