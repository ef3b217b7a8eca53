"""`ProceduralBackend`: the PyBullet/TinyRenderer implementation of `RenderBackend`.

Frame i is a pure function of the resolved clip: `frames(start, end)` always simulates from
frame 0 (skipped frames are simulated, not rendered), so a resumed render equals an
uninterrupted one. Consecutive calls continue the running simulation when they can.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p

from contract.clip import ResolvedClip
from contract.errors import UserError
from unreal_bridge.backend import RenderedFrame
from unreal_bridge.procedural.renderer import ALL_PASSES
from unreal_bridge.procedural.simulation import ClipSimulation


def _pybullet_version() -> str:
    try:
        from importlib.metadata import version

        return version("pybullet")
    except Exception:  # an unpackaged build
        return str(p.getAPIVersion())


class ProceduralBackend:
    name = "procedural"
    engine_version = f"pybullet {_pybullet_version()} TinyRenderer"
    passes: tuple[str, ...] = ALL_PASSES
    capabilities: tuple[str, ...] = ("deterministic", "resume", "vehicle_physics", "weather")

    def __init__(self, *, shadows: bool = False, asset_dirs: tuple[str | Path, ...] | list[str | Path] = ()) -> None:
        """`shadows=True` turns on TinyRenderer's shadow map: about half the speed, and it shows
        acne and a hard frustum edge on large scenes (docs/procedural-renderer.md), so it is off.

        `asset_dirs`: server-side folders whose PNGs a clip may name as `world.params.heightmap`
        (pybullet_data's files always may). A clip never names an arbitrary path on this machine."""
        self.shadows = shadows
        self.asset_dirs = tuple(Path(d) for d in asset_dirs)
        self._clip: ResolvedClip | None = None
        self._sim: ClipSimulation | None = None

    # ------------------------------------------------------------------ lifecycle

    def open(self, clip: ResolvedClip | Mapping[str, Any]) -> None:
        """Build the clip's world now, so bad clips fail here rather than mid-stream."""
        self.close()
        self._clip = ResolvedClip.parse(clip)
        self._sim = ClipSimulation(clip, shadows=self.shadows, asset_dirs=self.asset_dirs)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
        self._sim = None

    def __del__(self) -> None:  # PyBullet allows only a few clients per process: never leak one
        try:
            self.close()
        except Exception:
            pass

    @property
    def frame_count(self) -> int:
        return self._require_sim().frame_count

    def _require_sim(self) -> ClipSimulation:
        if self._clip is None:
            raise RuntimeError("ProceduralBackend.open(clip) must be called before frames()")
        if self._sim is None:
            self._sim = ClipSimulation(self._clip, shadows=self.shadows, asset_dirs=self.asset_dirs)
        return self._sim

    # ------------------------------------------------------------------ rendering

    def frames(self, start: int, end: int, *, passes: tuple[str, ...] | list[str] | None = None) -> Iterator[RenderedFrame]:
        sim = self._require_sim()
        if not 0 <= start <= end <= sim.frame_count:
            raise UserError(f"render range [{start}, {end}) is outside the clip's frames [0, {sim.frame_count})",
                            hint="ask for start_frame <= end_frame <= output.frames")
        wanted = tuple(passes) if passes else ALL_PASSES
        unknown = [name for name in wanted if name not in ALL_PASSES]
        if unknown:
            raise UserError(f"passes: {unknown} are not rendered by the procedural backend", hint=f"use {', '.join(ALL_PASSES)}")
        if sim.next_frame > start:  # the running simulation is past `start`: rebuild from frame 0
            sim.close()
            self._sim = None
            sim = self._require_sim()
        try:
            while sim.next_frame < start:  # skipped frames are simulated, not rendered
                sim.advance()
        except BaseException:
            self.close()
            raise
        intrinsics = sim.K.copy()
        for _ in range(start, end):
            try:
                frame = sim.advance()
                pose = sim.camera_pose(frame)
                rendered = sim.render(frame, pose, wanted)
            except BaseException:
                # The simulation may be half-way through a frame: never continue from it.
                self.close()
                raise
            yield RenderedFrame(
                index=frame,
                sim_time=sim.sim_time(frame),
                camera_to_world=pose,
                intrinsics=intrinsics.copy(),
                action=sim.actions[frame].copy(),
                passes=rendered,
            )

    def camera_poses(self) -> np.ndarray | None:
        """The kinematic rollout used for rendering (None for the vehicle rig: poses come from physics)."""
        sim = self._require_sim()
        return None if sim.poses is None else sim.poses.copy()
