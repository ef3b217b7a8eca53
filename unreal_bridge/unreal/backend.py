"""`UnrealBackend`: the RenderBackend that runs inside the Unreal Editor.

Threading (the rule the whole design follows): the gRPC server calls `open`, `frames` and
`close` on its own threads; those methods never touch `unreal.*`. They submit tasks to a
`GameThreadExecutor` and wait on futures and thread-safe queues. The editor's tick runs the
tasks on the game thread.

Frame pacing: a render is one multi-tick task. Each tick it simulates exactly one fixed step
(`sim_time = index * step`, step = 1 / fps): move the camera to the clip's pose for that
frame, capture every pass, read the pixels and the camera state back, hand the frame to the
gRPC side. So a frame's pose and pixels always come from the same tick.

Resume: the camera of a rollout-driven rig is fully determined by `poses[index]`, so frames
`start..end-1` render the same camera whether or not earlier frames were rendered in this call
(the protocol's "output for frame i does not depend on start_frame"). Warm-up ticks
(`simulation.warmup_frames`) are rendered and discarded at the first requested pose so
auto-exposure, temporal anti-aliasing and texture streaming settle before frame `start`; they
only help because the captures persist their view state (scene.py). A resumed render warms up
at its own first pose, so frame k of a resume matches frame k of a full render only as closely
as the warm-up lets the history converge (exactly, with a fixed exposure and no temporal AA).
GPU rendering is not bit-exact, so the backend does not advertise "deterministic".
"""
from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from contract.clip import ResolvedClip
from unreal_bridge.backend import RenderedFrame
from unreal_bridge.unreal.editor_settings import keep_editor_ticking
from unreal_bridge.unreal.game_thread import GameThreadExecutor, GameThreadStalled
from unreal_bridge.unreal.plan import SUPPORTED_PASSES, EditorPlan, plan_for_editor
from unreal_bridge.unreal.scene import UnrealScene

log = logging.getLogger("worldloom.unreal.backend")

__all__ = ["UnrealBackend", "UnrealBackendConfig"]

_DONE = object()


@dataclass
class UnrealBackendConfig:
    """Time limits. Loading a level can take minutes; one frame should take well under one."""

    open_timeout_s: float = 900.0
    frame_timeout_s: float = 120.0
    # The editor may block its game thread while loading; beyond this, call it a hang.
    stall_s: float = 600.0
    # Frames the game thread may run ahead of the network before it waits (never blocks).
    max_pending_frames: int = 4
    # "scene_capture": SceneCapture2D render targets, one capture per tick (fast path).
    # "movie_render_queue": RGB through MRQ as one shot (cinematic path); depth still from captures.
    capture: Literal["scene_capture", "movie_render_queue"] = "scene_capture"
    cinematic_timeout_s: float = 3600.0
    cinematic_dir: Path | None = None  # where MRQ writes PNGs (default: the system temp folder)
    # Where render targets are exported each frame (default: a fresh folder in the system temp folder).
    export_dir: Path | None = None
    # Fixed exposure (EV100 bias, manual metering) on the RGB capture; None keeps the level's
    # auto exposure, which then needs simulation.warmup_frames to settle.
    exposure_ev100: float | None = None


class UnrealBackend:
    """RenderBackend over the Unreal Editor, driven through a GameThreadExecutor."""

    name = "unreal"
    passes: tuple[str, ...] = SUPPORTED_PASSES
    capabilities: tuple[str, ...] = ("resume", "time_of_day", "weather", "scene_capture")

    def __init__(self, unreal: Any, executor: GameThreadExecutor, config: UnrealBackendConfig | None = None) -> None:
        """Construct on the game thread (the start-up script does): reads the engine version."""
        self.unreal = unreal
        self.executor = executor
        self.config = config or UnrealBackendConfig()
        self.engine_version = f"UE {unreal.SystemLibrary.get_engine_version()}"
        keep_editor_ticking(unreal)  # an unfocused editor would otherwise tick a few times a second
        export_dir = self.config.export_dir or Path(tempfile.mkdtemp(prefix="worldloom_unreal_export_"))
        self.export_dir = Path(export_dir)
        self._scene = UnrealScene(unreal, self.export_dir, exposure_ev100=self.config.exposure_ev100)
        self._plan: EditorPlan | None = None
        if self.config.capture == "movie_render_queue":
            self.capabilities = (*type(self).capabilities, "movie_render_queue")

    # -- RenderBackend (called on gRPC threads: no unreal.* here) ------------------------

    def open(self, clip: ResolvedClip | Mapping[str, Any]) -> None:
        plan = plan_for_editor(clip)  # INVALID_ARGUMENT before the editor is touched

        def load_on_game_thread() -> None:
            if self._scene.plan is not None:
                self._scene.destroy()
            self._scene.load(plan)
            for item in self._scene.missing_environment:
                self.unreal.log_warning(f"worldloom: level {plan.level} has no {item}; that part of the environment is left as the level has it")

        self.executor.wait(
            self.executor.submit(load_on_game_thread),
            timeout_s=self.config.open_timeout_s,
            stall_s=self.config.stall_s,
            what=f"loading level {plan.level}",
        )
        self._plan = plan

    def frames(self, start: int, end: int, passes: list[str] | None = None) -> Iterator[RenderedFrame]:
        plan = self._plan
        if plan is None:
            raise RuntimeError("frames() before open(): no level is loaded")
        wanted = tuple(passes) if passes else plan.passes
        if self.config.capture == "movie_render_queue" and "rgb" in wanted:
            yield from self._cinematic_frames(plan, start, end, wanted)
            return
        yield from self._captured_frames(plan, start, end, wanted)

    def _captured_frames(self, plan: EditorPlan, start: int, end: int, wanted: tuple[str, ...]) -> Iterator[RenderedFrame]:
        out: queue.Queue = queue.Queue()
        cancel = threading.Event()
        future = self.executor.submit(lambda: self._render_task(plan, start, end, wanted, out, cancel))
        try:
            for _ in range(start, end):
                item = self._next(out, future)
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # a cancelled stream stops the task at its next tick

    def _cinematic_frames(self, plan: EditorPlan, start: int, end: int, wanted: tuple[str, ...]) -> Iterator[RenderedFrame]:
        """RGB from one Movie Render Queue shot, depth (if wanted) from captures at the same poses."""
        from PIL import Image

        from unreal_bridge.unreal.mrq import MovieRenderQueueShot

        root = Path(self.config.cinematic_dir or tempfile.gettempdir())
        shot_dir = root / f"worldloom_mrq_{plan.key or 'clip'}_{start}_{end}_{uuid.uuid4().hex[:8]}"
        shot = MovieRenderQueueShot(self.unreal, plan, self._scene.camera, shot_dir)
        depth_frames = None
        try:
            files = self.executor.wait(
                self.executor.submit(lambda: shot.task(start, end)),
                timeout_s=self.config.cinematic_timeout_s,
                stall_s=self.config.stall_s,
                what=f"Movie Render Queue shot of frames [{start}, {end})",
            )
            depth_frames = self._captured_frames(plan, start, end, ("depth",)) if "depth" in wanted else None
            for index, path in zip(range(start, end), files, strict=False):
                with Image.open(path) as image:
                    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
                if rgb.shape != (plan.height, plan.width, 3):
                    raise RuntimeError(f"Movie Render Queue wrote {path.name} at {rgb.shape[1]}x{rgb.shape[0]}, not {plan.width}x{plan.height}")
                if depth_frames is not None:
                    frame = next(depth_frames)
                    frame.passes["rgb"] = rgb
                else:  # MRQ renders in PIE ticks we do not see: the keyed pose is the pose
                    frame = RenderedFrame(index=index, sim_time=index * plan.step_s, camera_to_world=plan.poses[index].copy(),
                                          intrinsics=plan.intrinsics.copy(), action=np.asarray(plan.actions[index], dtype=np.float32),
                                          passes={"rgb": rgb})
                yield frame
        finally:
            if depth_frames is not None:
                depth_frames.close()  # stops the capture task on the game thread
            shutil.rmtree(shot_dir, ignore_errors=True)

    def close(self) -> None:
        self._plan = None

        def destroy() -> None:
            if self._scene.plan is not None:
                self._scene.destroy()

        if self.executor.on_game_thread():  # editor shutting down: the tick cannot run while we wait
            destroy()
            return
        future = self.executor.submit(destroy)
        try:
            self.executor.wait(future, timeout_s=60.0, stall_s=60.0, what="closing the session")
        except (TimeoutError, GameThreadStalled) as error:  # closing must never wedge the server
            log.warning("close: %s", error)

    # -- waiting on the game thread -------------------------------------------------------

    def _next(self, out: queue.Queue, future) -> Any:
        waited = 0.0
        while True:
            try:
                return out.get(timeout=0.25)
            except queue.Empty:
                waited += 0.25
            if future.done() and out.empty():
                error = future.exception()
                raise error if error is not None else RuntimeError("render task ended before all frames were produced")
            if self.executor.seconds_since_tick() > self.config.stall_s:
                raise GameThreadStalled(
                    f"the editor's game thread has not ticked for {self.executor.seconds_since_tick():.0f} s; "
                    "restart the editor and resume"
                )
            if waited > self.config.frame_timeout_s:
                raise TimeoutError(f"no frame for {waited:.0f} s from the editor")

    # -- the render task (game thread) --------------------------------------------------

    def _render_task(self, plan: EditorPlan, start: int, end: int, passes: tuple[str, ...], out: queue.Queue,
                     cancel: threading.Event):
        """Multi-tick task: warm-up ticks, then one fixed step and capture per tick."""
        scene = self._scene
        if start < end:
            scene.move_camera(plan.poses[start])
            for _ in range(plan.warmup_frames):
                if cancel.is_set():
                    return
                scene.capture(passes, read_back=False)
                yield
        for index in range(start, end):
            # Back-pressure without blocking the editor: skip ticks until the network catches up.
            while out.qsize() >= self.config.max_pending_frames:
                if cancel.is_set():
                    return
                yield
            if cancel.is_set():
                return
            scene.move_camera(plan.poses[index])
            pixels, camera_to_world, intrinsics = scene.capture(passes)
            out.put(
                RenderedFrame(
                    index=index,
                    sim_time=index * plan.step_s,
                    camera_to_world=camera_to_world,
                    intrinsics=intrinsics,
                    action=np.asarray(plan.actions[index], dtype=np.float32),
                    passes=pixels,
                )
            )
            yield
        return None
