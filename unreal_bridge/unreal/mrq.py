"""The cinematic path: RGB through Movie Render Queue (MRQ). Game thread only.

MRQ renders a Level Sequence, one shot at a time, in a Play-In-Editor session it drives over
many editor ticks. It is asynchronous: `render_queue_with_executor_instance` returns at once
and the executor reports through delegates. So this is a multi-tick task for
`GameThreadExecutor`: author a sequence keyed with the clip's poses, queue one job, bind the
finished/errored delegates, then `yield` once per tick until the finished delegate has fired
(never a sleep loop: that would block the very ticks MRQ needs).

Settings follow the field guide: temporal samples from `output.temporal_samples` (default 1;
more samples perturb simulation steps), spatial samples from `output.spatial_samples`,
`simulation.warmup_frames` rendered warm-up frames, PNG output named by frame number. The
camera is the rig's CineCameraActor, whose filmback scene.py sets to the output's aspect ratio
(a 16:9 filmback with the aspect ratio constrained letterboxes any other output). MRQ only gives RGB here; depth comes from the SceneCapture2D path
at the same poses. The camera pose reported with an MRQ frame is the keyed pose: MRQ runs in
PIE ticks the bridge does not see, so the same-tick read-back of the fast path is not possible.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unreal_bridge.unreal.coords import opencv_pose_to_unreal
from unreal_bridge.unreal.plan import EditorPlan

SEQUENCE_FOLDER = "/Game/Worldloom/Generated"
FRAME_PAD = 5
# MovieScene3DTransformSection channels by name (MovieSceneScriptingChannel.channel_name), in the
# order of `keyed_transforms` columns: Unreal's Rotation.X/Y/Z are roll/pitch/yaw. Looked up by
# name because the position of a channel in get_all_channels() is not part of the API.
TRANSFORM_CHANNELS = ("Location.X", "Location.Y", "Location.Z", "Rotation.X", "Rotation.Y", "Rotation.Z")


def keyed_transforms(poses: np.ndarray) -> np.ndarray:
    """(T, 4, 4) OpenCV poses -> (T, 6) Unreal [x, y, z, roll, pitch, yaw], angles unwrapped.

    Unwrapping keeps consecutive keys within 180 degrees, so the sequencer never interpolates
    the long way round (which motion blur or sub-frame samples would show).
    """
    rows = [(*location, *rotator) for location, rotator in (opencv_pose_to_unreal(pose) for pose in poses)]
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    table[:, 3:] = np.degrees(np.unwrap(np.radians(table[:, 3:]), axis=0))
    return table


def frame_file(output_dir: Path, index: int) -> Path:
    return Path(output_dir) / f"{index:0{FRAME_PAD}d}.png"


class MovieRenderQueueShot:
    """One MRQ job rendering frames [start, end) of a clip to PNG files in `output_dir`."""

    def __init__(self, unreal: Any, plan: EditorPlan, camera: Any, output_dir: Path) -> None:
        self.unreal = unreal
        self.plan = plan
        self.camera = camera  # the CineCameraActor of the fast-path rig
        self.output_dir = Path(output_dir)
        self.finished = False
        self.success = False
        self.errors: list[str] = []
        self._executor: Any = None  # referenced so the delegates stay bound

    # -- delegates (the engine calls these on the game thread) ---------------------------

    def _on_finished(self, executor: Any, success: bool) -> None:
        self.success = bool(success)
        self.finished = True

    def _on_errored(self, executor: Any, pipeline: Any, is_fatal: bool, error_text: Any) -> None:
        self.errors.append(str(error_text))

    # -- authoring -----------------------------------------------------------------------

    def _sequence(self, start: int, end: int) -> Any:
        unreal, plan = self.unreal, self.plan
        name = f"SEQ_worldloom_{plan.key or 'clip'}"
        path = f"{SEQUENCE_FOLDER}/{name}"
        if unreal.EditorAssetLibrary.does_asset_exist(path):
            unreal.EditorAssetLibrary.delete_asset(path)
        tools = unreal.AssetToolsHelpers.get_asset_tools()
        sequence = tools.create_asset(name, SEQUENCE_FOLDER, unreal.LevelSequence, unreal.LevelSequenceFactoryNew())
        sequence.set_display_rate(unreal.FrameRate(int(round(plan.fps)), 1))
        sequence.set_playback_start(start)
        sequence.set_playback_end(end)
        binding = sequence.add_possessable(self.camera)
        section = binding.add_track(unreal.MovieScene3DTransformTrack).add_section()
        section.set_range(start, end)
        by_name = {str(channel.get_editor_property("channel_name")): channel for channel in section.get_all_channels()}
        missing = [name for name in TRANSFORM_CHANNELS if name not in by_name]
        if missing:
            raise RuntimeError(f"the transform section has no channel(s) {missing}; found {sorted(by_name)}")
        channels = [by_name[name] for name in TRANSFORM_CHANNELS]
        for offset, values in enumerate(keyed_transforms(plan.poses[start:end])):
            frame = unreal.FrameNumber(start + offset)
            for channel, value in zip(channels, values, strict=False):
                channel.add_key(frame, float(value))
        cut = sequence.add_track(unreal.MovieSceneCameraCutTrack).add_section()
        cut.set_range(start, end)
        cut.set_camera_binding_id(sequence.get_binding_id(binding))
        return sequence

    def _job(self, sequence: Any) -> None:
        unreal, plan = self.unreal, self.plan
        queue = unreal.get_editor_subsystem(unreal.MoviePipelineQueueSubsystem).get_queue()
        queue.delete_all_jobs()
        job = queue.allocate_new_job(unreal.MoviePipelineExecutorJob)
        job.set_editor_property("sequence", unreal.SoftObjectPath(sequence.get_path_name()))
        level_name = plan.level.rsplit("/", 1)[-1]
        job.set_editor_property("map", unreal.SoftObjectPath(f"{plan.level}.{level_name}"))
        config = job.get_configuration()
        output = config.find_or_add_setting_by_class(unreal.MoviePipelineOutputSetting)
        output.set_editor_property("output_directory", unreal.DirectoryPath(str(self.output_dir)))
        output.set_editor_property("file_name_format", "{frame_number}")
        output.set_editor_property("zero_pad_frame_numbers", FRAME_PAD)
        output.set_editor_property("output_resolution", unreal.IntPoint(plan.width, plan.height))
        anti_aliasing = config.find_or_add_setting_by_class(unreal.MoviePipelineAntiAliasingSetting)
        anti_aliasing.set_editor_property("temporal_sample_count", plan.temporal_samples)
        anti_aliasing.set_editor_property("spatial_sample_count", plan.spatial_samples)
        # Warm-up frames that render (and are discarded), so TAA history and exposure settle;
        # engine_warm_up_count only ticks the game thread and submits nothing to the GPU
        # (UMoviePipelineAntiAliasingSetting::RenderWarmUpCount / EngineWarmUpCount, 5.3-5.5).
        anti_aliasing.set_editor_property("render_warm_up_count", plan.warmup_frames)
        anti_aliasing.set_editor_property("engine_warm_up_count", 0)
        config.find_or_add_setting_by_class(unreal.MoviePipelineDeferredPassBase)
        config.find_or_add_setting_by_class(unreal.MoviePipelineImageSequenceOutput_PNG)

    # -- the task ------------------------------------------------------------------------

    def task(self, start: int, end: int):
        """Multi-tick task: returns the PNG paths of frames [start, end) once MRQ is done."""
        unreal = self.unreal
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._job(self._sequence(start, end))
        executor = unreal.MoviePipelinePIEExecutor()
        executor.on_executor_finished_delegate.add_callable_unique(self._on_finished)
        executor.on_executor_errored_delegate.add_callable_unique(self._on_errored)
        self._executor = executor
        unreal.get_editor_subsystem(unreal.MoviePipelineQueueSubsystem).render_queue_with_executor_instance(executor)
        while not self.finished:
            yield  # MRQ renders over the coming ticks; the delegate flips `finished`
        self._executor = None
        if not self.success:
            raise RuntimeError(f"Movie Render Queue failed: {'; '.join(self.errors) or 'see the editor Output Log'}")
        files = [frame_file(self.output_dir, index) for index in range(start, end)]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise RuntimeError(f"Movie Render Queue finished without frames {missing[:3]}; check the job's output settings")
        return files
