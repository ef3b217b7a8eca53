"""`worldloom sample`: a rollout from a trained world-model checkpoint into an mp4.

Conditioning, all optional besides the prompt:
  --image first.png     image-to-video: the first frame is given (centre-cropped and resized)
  --actions "w-80,a-20" keyboard actions per frame (contract.manifest action strings); the camera
                        path is the first-person rollout of those actions (docs/manifests.md)
  --camera path.json    an explicit camera path: {"camera_to_world": [T][4][4], "intrinsics": [3][3]}
                        or a bare list of 4x4 matrices (OpenCV camera-to-world, metres)
CHECKPOINT is an export folder (`worldloom export`: EMA weights + VAE as safetensors, enough on
its own), a checkpoint folder or a run folder (its latest checkpoint's EMA weights and VAE).
An action string longer than the rollout is cut to the rollout (and said so); a shorter one is
padded with idle frames.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from contract.defaults import DEFAULT_CAMERA_HEIGHT_M, DEFAULT_SPEED_MPS, unknown_camera_intrinsics
from contract.errors import UserError
from training.checkpoint import LoadedCheckpoint, load_for_inference
from training.export import attention_of
from training.video_io import write_mp4

# --actions rolls out the manifests' default walker: its speed and eye height (contract.defaults).
WALK_SPEED_MPS = DEFAULT_SPEED_MPS
EYE_HEIGHT_M = DEFAULT_CAMERA_HEIGHT_M["first_person"]
CPU = torch.device("cpu")


@dataclass
class SampleResult:
    out: Path
    frames: int
    fps: float
    height: int
    width: int
    wall_s: float
    notes: list[str] = field(default_factory=list)  # things the user should know (e.g. actions cut)


def build_models(loaded: LoadedCheckpoint, device: torch.device = CPU):
    """(world model, vae, model config) from a world checkpoint, eval mode, on `device`."""
    from model.configs import get_config
    from model.vae import VideoVAE
    from model.world_model import WorldModel

    state = loaded.state
    if state.get("stage") != "world":
        raise UserError(f"{loaded.path}: is a {state.get('stage')!r} checkpoint; "
                        "sample needs a `stage: world` checkpoint",
                        hint="train the world stage (training/configs/tiny_world.yaml) and pass its checkpoint")
    if loaded.vae_weights is None:
        raise UserError(f"{loaded.path}: has no VAE weights, so its latents cannot be decoded",
                        hint="set vae_checkpoint in the world config when training on encoded latents")
    overrides = dict(state.get("model_overrides") or {})
    overrides.setdefault("attention", attention_of(loaded.weights))  # checkpoints store it in the weights
    model_cfg = get_config(state["model"], **overrides)
    world_model = WorldModel(model_cfg)
    world_model.load_state_dict(loaded.weights)
    vae = VideoVAE(model_cfg.vae)
    vae.load_state_dict(loaded.vae_weights)
    return world_model.eval().to(device), vae.eval().to(device), model_cfg


def frames_for(seconds: float, fps: float, temporal_compression: int) -> int:
    """The smallest valid clip length (1 + tc*k) covering `seconds` at `fps`."""
    wanted = max(1, round(seconds * fps))
    k = max(1, -(-(wanted - 1) // temporal_compression))
    return 1 + temporal_compression * k


def load_image(path: str | Path, height: int, width: int) -> np.ndarray:
    from PIL import Image

    from training.data import resize_frames

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--image {path}: file not found")
    try:
        image = np.asarray(Image.open(path).convert("RGB"))
    except OSError as error:
        raise UserError(f"--image {path}: not a readable image ({error})") from None
    return resize_frames(image[None], height, width)[0].numpy()


def actions_and_path(text: str, frames: int, fps: float, notes: list[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Actions (frames, 8) and the first-person camera path they drive. A longer string is cut to
    the rollout (`--seconds` decides the length, as a user reading `--seconds 2` expects), with a
    note; a shorter one is padded with idle frames."""
    from contract.manifest import ActionStringError, camera_to_world, parse_action_string, rollout_poses

    try:
        actions = parse_action_string(text)
        if len(actions) <= frames:
            actions = parse_action_string(text, frames=frames)  # pads with idle frames
        else:
            if notes is not None:
                notes.append(f"--actions: {len(actions)} frames of actions, the {frames}-frame rollout "
                             f"(--seconds) uses the first {frames}")
            actions = actions[:frames]
    except ActionStringError as error:
        raise UserError(f"--actions {text!r}: {error}",
                        hint=f"the rollout has {frames} frames; shorter strings are padded with idle frames") from None
    start = camera_to_world([0.0, 0.0, EYE_HEIGHT_M], 0.0, 0.0)
    return actions, rollout_poses(actions, start, WALK_SPEED_MPS, fps)


def load_camera(path: str | Path, frames: int) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--camera {path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"--camera {path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    poses = data.get("camera_to_world") if isinstance(data, dict) else data
    intrinsics = data.get("intrinsics") if isinstance(data, dict) else None
    try:
        poses = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError):
        poses = np.zeros(0)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise UserError(f"--camera {path}: field 'camera_to_world' must be a list of 4x4 matrices",
                        hint='write {"camera_to_world": [[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], ...]}')
    if len(poses) < frames:
        raise UserError(f"--camera {path}: field 'camera_to_world' has {len(poses)} poses, the rollout needs {frames}",
                        hint="give one pose per output frame or shorten --seconds")
    K = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
    if K is not None and K.shape != (3, 3):
        raise UserError(f"--camera {path}: field 'intrinsics' must be a 3x3 matrix")
    return poses[:frames], K


@contextlib.contextmanager
def chunk_progress(show: bool, chunks: int) -> Iterator[Callable[[int, int], None] | None]:
    """A `sampling chunks` progress bar fed by the sampler's (chunks done, chunks in all) callback.

    The bar lives here, with the caller, so that model/ imports no display library; it is the bar
    `rich.progress.track` drew (same columns, standard output). None when not shown."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(elapsed_when_finished=True)) as bar:
        task = bar.add_task("sampling chunks", total=chunks)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def sample_video(checkpoint: str | Path, prompt: str, *, seconds: float, out: str | Path,
                 image: str | Path | None = None, actions: str | None = None, camera: str | Path | None = None,
                 steps: int = 8, seed: int = 0, cfg_text: float = 3.0, cfg_action: float = 1.5,
                 progress: bool = False) -> SampleResult:
    """Roll out `seconds` of video and write it to `out` (atomically). Returns what was written."""
    from model.sampler import chunk_ranges, sample

    if actions is not None and camera is not None:
        raise UserError("--actions and --camera both set a camera path", hint="pass one of them")
    if seconds <= 0:
        raise UserError(f"--seconds {seconds}: must be positive")
    started = time.perf_counter()
    loaded = load_for_inference(checkpoint)
    world_model, vae, model_cfg = build_models(loaded)
    fps, height, width = model_cfg.fps, model_cfg.height, model_cfg.width
    frames = frames_for(seconds, fps, model_cfg.vae.temporal_compression)
    first = load_image(image, height, width) if image is not None else None
    action_array = poses = K = None
    notes: list[str] = []
    if actions is not None:
        action_array, poses = actions_and_path(actions, frames, fps, notes)
    if camera is not None:
        poses, K = load_camera(camera, frames)
    if poses is not None and K is None:
        K = unknown_camera_intrinsics(width, height)
    latent_frames = model_cfg.latent_shape(frames, height, width)[1]
    chunks = len(chunk_ranges(world_model, latent_frames))
    with torch.no_grad(), chunk_progress(progress, chunks) as on_chunk:
        video = sample(world_model, vae, prompt=prompt, num_frames=frames, fps=fps, height=height, width=width,
                       image=first, actions=action_array, camera_to_world=poses, intrinsics=K,
                       cfg_text=cfg_text, cfg_action=cfg_action, steps=steps, seed=seed, progress=on_chunk)
    path = write_mp4(out, np.asarray(video), fps)
    return SampleResult(out=path, frames=len(video), fps=fps, height=height, width=width,
                        wall_s=time.perf_counter() - started, notes=notes)
