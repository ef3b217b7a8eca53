"""`run_eval`: every eval measurement for one checkpoint on one held-out set, in one pass.

Per held-out clip (start frame = the clip's frame 0, prompt = its caption):
  rollouts   true actions + camera path | actions + path of another clip (shuffled) | none
  fidelity   PSNR / SSIM of each rollout against the ground truth, per frame, then per second
  camera     the estimator (camera.py) on each rollout and on the ground truth itself (its floor),
             scored against the commanded (true) path
  response   turn left / turn right / forward / back / none from the same start: estimated yaw
             sign and image expansion (divergence) against the command
  revisit    a full turn on the spot and a walk out and back, rendered by the procedural backend
             and rolled out: the frame at the return against the frame first seen there
Every number of the true-action rollouts has its shuffled and no-action baselines beside it.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract.clip import KINEMATIC_RIGS, ResolvedClip
from contract.errors import UserError
from contract.sample import ACTION_DIM
from training.eval import camera as cam
from training.eval import groundtruth, metrics
from training.eval.rollout import (
    EvalClip,
    ModelBundle,
    SamplerSettings,
    command_actions,
    load_model,
    path_for,
    prepare_clip,
    rollout,
)

CONTROLS = ("true", "shuffled", "no_action")
COMMANDS = ("turn_left", "turn_right", "forward", "back", "none")
REVISITS = ("turn", "out_and_back")
Progress = Callable[[str, int, int], None]


@dataclass
class EvalOptions:
    clips: int = 32
    seconds: float = 2.0
    steps: int = 8
    cfg_text: float = 3.0
    cfg_action: float = 1.5
    seed: int = 0
    action_response: bool = True
    revisit: bool = True
    videos: int = 4                  # side-by-side mp4s written (first N clips)
    mlflow: bool = True
    tracking_uri: str | None = None  # default: the checkpoint run's store
    fidelity_window_s: float = 2.0   # the "first 2 s" of psnr_true_vs_shuffled_db


@dataclass
class ClipResult:
    key: str
    source: str
    psnr: dict[str, list[float]] = field(default_factory=dict)       # control -> per frame
    ssim: dict[str, list[float]] = field(default_factory=dict)
    rotation_deg: dict[str, list[float]] = field(default_factory=dict)
    translation_deg: dict[str, list[float]] = field(default_factory=dict)
    cammc: dict[str, list[float]] = field(default_factory=dict)
    response: dict[str, dict[str, float]] = field(default_factory=dict)  # command -> yaw_deg, divergence
    revisit: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class EvalInputs:
    """What `prepare_eval` checked and loaded: the model, the held-out clips, the rollout length."""

    bundle: ModelBundle
    held_out: list[groundtruth.HeldOutClip]
    frames: int


def prepare_eval(checkpoint: str | Path, data: str | Path, *, clips: int = 32, seconds: float = 2.0) -> EvalInputs:
    """Every check that can fail on the user's input, before any progress bar: UserError otherwise."""
    if clips < 1:
        raise UserError(f"--clips {clips}: must be at least 1")
    if not 0 < seconds <= 120:
        raise UserError(f"--seconds {seconds}: must be in (0, 120]")
    data = Path(data)
    if not data.exists():  # before loading the model: the cheap check first
        raise UserError(f"--data {data}: folder not found", hint="pass a dataset folder written by worldloom generate")
    bundle = load_model(str(checkpoint))
    frames = _frames(bundle, seconds)
    held_out = groundtruth.load_held_out(data, clips, fps=bundle.fps, frames=frames)
    for clip in held_out:  # a horizon past the stored clip needs a clip the procedural backend can re-drive
        needed = (frames - 1) * max(1, round(clip.fps / bundle.fps)) + 1
        if len(clip.frames) >= needed:
            continue
        rig = None if clip.resolved_clip is None else ResolvedClip.parse(
            clip.resolved_clip, source=f"--data {data}: clip {clip.key}'s resolved_clip").camera.rig
        if rig not in KINEMATIC_RIGS:
            why = "has no resolved_clip in its json" if clip.resolved_clip is None else f"uses the {rig!r} rig"
            raise UserError(f"--data {data}: clip {clip.key} has {len(clip.frames)} frames, {seconds:g} s needs {needed}, "
                            f"and it {why}, so the rest cannot be rendered",
                            hint=f"lower --seconds to at most {(len(clip.frames) - 1) / clip.fps:g}")
    return EvalInputs(bundle, held_out, frames)


def run_eval(checkpoint: str | Path, data: str | Path, out: str | Path, *, clips: int = 32, seconds: float = 2.0,
             steps: int = 8, cfg_text: float = 3.0, cfg_action: float = 1.5, seed: int = 0,
             action_response: bool = True, revisit: bool = True, videos: int = 4, mlflow: bool = True,
             tracking_uri: str | None = None, on_progress: Progress | None = None,
             inputs: EvalInputs | None = None, threads: int | None = None) -> dict[str, Any]:
    """Evaluate a world checkpoint on a held-out dataset; writes the report, plots and videos to `out`.

    `inputs` (from `prepare_eval`) skips loading again when the caller already checked the input.
    `threads` sets torch's intra-op threads for the run (restored after): on a small shared CPU,
    1 was 14x faster than 2 for the tiny model (docs/eval.md, "Limits").
    Returns the report dict. Top-level keys used by benchmarks: `yaw_sign_agreement`,
    `expansion_agreement`, `psnr_true_vs_shuffled_db` (true minus shuffled, first 2 s),
    `psnr_true_db`, `psnr_shuffled_db`, `psnr_no_action_db`, `rotation_error_deg_true`,
    `rotation_error_deg_no_action`, `rotation_error_deg_shuffled`, `rotation_error_deg_ground_truth`.
    """
    import torch

    options = EvalOptions(clips=clips, seconds=seconds, steps=steps, cfg_text=cfg_text, cfg_action=cfg_action,
                          seed=seed, action_response=action_response, revisit=revisit, videos=videos,
                          mlflow=mlflow, tracking_uri=tracking_uri)
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads {threads}: must be at least 1")
        torch.set_num_threads(threads)
    try:
        return _run(checkpoint, data, out, options, on_progress, inputs)
    finally:
        torch.set_num_threads(before)


def _run(checkpoint: str | Path, data: str | Path, out: str | Path, options: EvalOptions,
         on_progress: Progress | None, inputs: EvalInputs | None) -> dict[str, Any]:
    from training.eval import report as report_mod

    seconds, videos = options.seconds, options.videos
    action_response, revisit = options.action_response, options.revisit
    started = time.perf_counter()
    progress = on_progress or (lambda stage, done, total: None)
    inputs = inputs or prepare_eval(checkpoint, data, clips=options.clips, seconds=seconds)
    bundle, held_out, frames = inputs.bundle, inputs.held_out, inputs.frames
    settings = SamplerSettings(steps=options.steps, cfg_text=options.cfg_text, cfg_action=options.cfg_action,
                               seed=options.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    prepared = []
    for index, clip in enumerate(held_out):
        progress("ground truth", index, len(held_out))
        prepared.append(prepare_clip(clip, frames, bundle.fps, bundle.size))
    results: list[ClipResult] = []
    side_by_side: dict[str, list[np.ndarray]] = {}
    response_grid: list[list[np.ndarray]] = []
    per_clip_work = 3 + (len(COMMANDS) if action_response else 0) + (len(REVISITS) if revisit else 0)
    total, done = len(prepared) * per_clip_work, 0

    def tick(stage: str) -> None:
        nonlocal done
        done += 1
        progress(stage, done, total)

    for index, clip in enumerate(prepared):
        result = ClipResult(clip.key, clip.source)
        videos_of_clip = {"ground_truth": clip.frames}
        conditions = {
            "true": (clip.actions, clip.poses),
            "shuffled": _shuffled(clip, prepared[(index + 1) % len(prepared)], bundle.fps),
            "no_action": (None, None),
        }
        for control, (actions, poses) in conditions.items():
            video = rollout(bundle, clip.frames[0], frames, prompt=clip.caption, actions=actions,
                            poses=poses, intrinsics=clip.intrinsics, settings=settings)
            videos_of_clip[control] = video
            _score(result, control, video, clip)
            tick(f"rollouts {control}")
        _score_camera(result, "ground_truth", clip.frames, clip)
        if index < videos:
            side_by_side[clip.key] = [videos_of_clip[name] for name in ("ground_truth", *CONTROLS)]
        if action_response:
            row = [clip.frames[0]]
            for command in COMMANDS:
                actions = command_actions(command, frames, clip.look_deg)
                poses = path_for(actions, clip.poses[0], clip.speed_mps, bundle.fps)
                video = rollout(bundle, clip.frames[0], frames, prompt=clip.caption, actions=actions,
                                poses=poses, intrinsics=clip.intrinsics, settings=settings)
                motions = cam.estimate_video(video, clip.intrinsics)
                result.response[command] = {"yaw_deg": metrics.yaw_total(motions),
                                            "divergence": metrics.mean_divergence(motions)}
                row.append(video[-1])
                tick(f"action response {command}")
            response_grid.append(row)
        if revisit:
            for kind in REVISITS:
                result.revisit[kind] = _revisit(bundle, clip, kind, frames, settings)
                tick(f"revisit {kind}")
        results.append(result)

    report = summarise(results, options, bundle, data, frames, wall_s=time.perf_counter() - started)
    report_mod.write_outputs(report, out, side_by_side, response_grid, fps=bundle.fps)
    if options.mlflow:
        from training.eval import tracking as eval_tracking

        report["mlflow"] = eval_tracking.log_eval(report, out, bundle, tracking_uri=options.tracking_uri)
        report_mod.write_json(report, out)
    return report


def _frames(bundle: ModelBundle, seconds: float) -> int:
    from training.sample import frames_for

    return frames_for(seconds, bundle.fps, bundle.config.vae.temporal_compression)


def _shuffled(clip: EvalClip, other: EvalClip, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Another clip's actions and camera path, re-anchored at this clip's first pose.

    With a single held-out clip there is no other clip: its own actions mirrored (turns, strafes
    and forward/back swapped) are the control instead, with their first-person path.
    """
    from contract.manifest.rollout import BACK, FORWARD, LEFT, PITCH, RIGHT, YAW

    if other is clip:
        mirrored = clip.actions.copy()
        mirrored[:, [FORWARD, BACK, LEFT, RIGHT]] = clip.actions[:, [BACK, FORWARD, RIGHT, LEFT]]
        mirrored[:, [YAW, PITCH]] *= -1
        return mirrored, path_for(mirrored, clip.poses[0], clip.speed_mps, fps)
    anchored = clip.poses[0][None] @ np.linalg.inv(other.poses[0])[None] @ other.poses
    return other.actions, anchored


def _score(result: ClipResult, control: str, video: np.ndarray, clip: EvalClip) -> None:
    result.psnr[control] = metrics.per_frame(metrics.psnr, video, clip.frames).tolist()
    result.ssim[control] = metrics.per_frame(metrics.ssim, video, clip.frames).tolist()
    _score_camera(result, control, video, clip)


def _score_camera(result: ClipResult, control: str, video: np.ndarray, clip: EvalClip) -> None:
    motions = cam.estimate_video(video, clip.intrinsics)
    errors = metrics.camera_errors(motions, clip.poses)
    result.rotation_deg[control] = errors["rotation_deg"].tolist()
    result.translation_deg[control] = errors["translation_deg"].tolist()
    result.cammc[control] = errors["cammc"].tolist()


def revisit_actions(kind: str, frames: int) -> np.ndarray:
    """Actions returning to the start pose at the last frame: a full turn, or out and back."""
    from contract.manifest.rollout import BACK, FORWARD, YAW

    actions = np.zeros((frames, ACTION_DIM), dtype=np.float32)
    moving = frames - 1
    if kind == "turn":
        actions[1:, YAW] = 360.0 / moving
    elif kind == "out_and_back":
        half = moving // 2
        actions[1:1 + half, FORWARD] = 1.0
        actions[1 + half:1 + 2 * half, BACK] = 1.0
    else:
        raise ValueError(kind)
    return actions


def _revisit(bundle: ModelBundle, clip: EvalClip, kind: str, frames: int, settings: SamplerSettings) -> dict[str, float]:
    """PSNR/SSIM between the frame at the return and frame 0, for the ground truth and the rollout."""
    from training.data import resize_frames

    actions = revisit_actions(kind, frames)
    if clip.resolved_clip is None or not ResolvedClip.parse(clip.resolved_clip).kinematic:
        return {}  # only rigs whose poses follow the actions can be re-driven
    render_clip = groundtruth.with_actions(clip.resolved_clip, actions, fps=bundle.fps)
    truth, poses, _ = groundtruth.render(render_clip)
    truth = resize_frames(truth, *bundle.size).numpy()
    video = rollout(bundle, truth[0], frames, prompt=clip.caption, actions=actions, poses=poses,
                    intrinsics=clip.intrinsics, settings=settings)
    last = frames - 1
    return {"ground_truth_psnr_db": metrics.psnr(truth[last], truth[0]),
            "ground_truth_ssim": metrics.ssim(truth[last], truth[0]),
            "rollout_psnr_db": metrics.psnr(video[last], video[0]),
            "rollout_ssim": metrics.ssim(video[last], video[0]),
            "rollout_vs_truth_psnr_db": metrics.psnr(video[last], truth[last])}


# --------------------------------------------------------------------------- summary


def _stack(results: list[ClipResult], attribute: str, control: str) -> np.ndarray:
    rows = [getattr(r, attribute).get(control) for r in results]
    rows = [row for row in rows if row is not None]
    if not rows:
        return np.zeros((0, 0))
    width = min(len(row) for row in rows)
    return np.array([row[:width] for row in rows], dtype=np.float64)


def _per_frame_mean(values: np.ndarray) -> np.ndarray:
    """Mean over clips per frame; +inf only when every clip is +inf at that frame; NaN ignored."""
    return np.array([metrics.finite_mean(values[:, t]) for t in range(values.shape[1])])


def _curve(values: np.ndarray, fps: float, start_frame: int) -> dict[str, Any]:
    if values.size == 0:
        return {"overall": math.nan, "per_second": []}
    per_frame = _per_frame_mean(values)
    picked = per_frame[start_frame:]
    return {"overall": metrics.finite_mean(picked), "per_second": metrics.by_second(per_frame, fps, start_frame)}


def summarise(results: list[ClipResult], options: EvalOptions, bundle: ModelBundle, data: str | Path,
              frames: int, *, wall_s: float) -> dict[str, Any]:
    fps = bundle.fps
    fidelity: dict[str, Any] = {}
    camera: dict[str, Any] = {}
    for control in CONTROLS:
        fidelity[control] = {"psnr_db": _curve(_stack(results, "psnr", control), fps, 1),
                             "ssim": _curve(_stack(results, "ssim", control), fps, 1)}
    for control in (*CONTROLS, "ground_truth"):
        camera[control] = {"rotation_error_deg": _curve(_stack(results, "rotation_deg", control), fps, 1),
                           "translation_direction_error_deg": _curve(_stack(results, "translation_deg", control), fps, 0),
                           "cammc": _curve(_stack(results, "cammc", control), fps, 1)}
    window = max(1, int(round(options.fidelity_window_s * fps)))

    def first_seconds(control: str) -> float:
        values = _stack(results, "psnr", control)
        return metrics.finite_mean(_per_frame_mean(values)[1:window + 1]) if values.size else math.nan

    response = _response_summary(results) if options.action_response else {}
    revisit = _revisit_summary(results) if options.revisit else {}
    psnr_true, psnr_shuffled = first_seconds("true"), first_seconds("shuffled")
    report: dict[str, Any] = {
        "schema": "worldloom.eval/1",
        "checkpoint": bundle.checkpoint,
        "checkpoint_step": bundle.state.get("step"),
        "training_run_id": bundle.state.get("mlflow_run_id"),
        "data": str(data),
        "clips": len(results),
        "seconds": options.seconds,
        "frames": frames,
        "fps": fps,
        "resolution": list(bundle.size),
        "options": asdict(options),
        "yaw_sign_agreement": response.get("yaw_sign_agreement", math.nan),
        "expansion_agreement": response.get("expansion_agreement", math.nan),
        "psnr_true_db": psnr_true,
        "psnr_shuffled_db": psnr_shuffled,
        "psnr_no_action_db": first_seconds("no_action"),
        "psnr_true_vs_shuffled_db": psnr_true - psnr_shuffled,
        "rotation_error_deg_true": camera["true"]["rotation_error_deg"]["overall"],
        "rotation_error_deg_shuffled": camera["shuffled"]["rotation_error_deg"]["overall"],
        "rotation_error_deg_no_action": camera["no_action"]["rotation_error_deg"]["overall"],
        "rotation_error_deg_ground_truth": camera["ground_truth"]["rotation_error_deg"]["overall"],
        "fidelity": fidelity,
        "camera": camera,
        "action_response": response,
        "revisit": revisit,
        "per_clip": [{"key": r.key, "source": r.source,
                      "psnr_true_db": metrics.finite_mean(np.array(r.psnr.get("true", [])[1:])),
                      "response": r.response, "revisit": r.revisit} for r in results],
        "wall_s": wall_s,
    }
    return report


def _response_summary(results: list[ClipResult]) -> dict[str, Any]:
    yaw_hits, yaw_total, expand_hits, expand_total = 0, 0, 0, 0
    per_command: dict[str, dict[str, float]] = {}
    for command in COMMANDS:
        yaws = np.array([r.response[command]["yaw_deg"] for r in results if command in r.response])
        divs = np.array([r.response[command]["divergence"] for r in results if command in r.response])
        per_command[command] = {"mean_yaw_deg": float(np.mean(yaws)) if len(yaws) else math.nan,
                                "mean_divergence": metrics.finite_mean(divs)}
    for r in results:
        for command, sign in (("turn_left", -1.0), ("turn_right", 1.0)):
            if command in r.response:
                yaw_total += 1
                yaw_hits += int(np.sign(r.response[command]["yaw_deg"]) == sign)
        for command, sign in (("forward", 1.0), ("back", -1.0)):
            if command in r.response:
                expand_total += 1
                value = r.response[command]["divergence"]
                expand_hits += int(math.isfinite(value) and np.sign(value) == sign)
    return {"yaw_sign_agreement": yaw_hits / yaw_total if yaw_total else math.nan,
            "expansion_agreement": expand_hits / expand_total if expand_total else math.nan,
            "starts": len(results), "per_command": per_command}


def _revisit_summary(results: list[ClipResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in REVISITS:
        rows = [r.revisit[kind] for r in results if r.revisit.get(kind)]
        summary[kind] = {name: metrics.finite_mean(np.array([row[name] for row in rows]))
                         for name in (rows[0].keys() if rows else [])}
        summary[kind]["trajectories"] = len(rows)
    return summary
