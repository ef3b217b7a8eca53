"""`worldloom encode`: precompute VAE latents of clip windows into shards, for the world stage.

Why: encoding every window on the fly costs a VAE forward per step; a frozen VAE gives the
same latents every epoch, so they can be computed once. The world stage then reads
`data.latents: <this folder>` and never decodes video.

Each input clip gives up to `windows_per_clip` non-overlapping windows at the model's frame
count, fps and resolution (the same windows the loader would cut, starting at frame 0). One
sample per window:

    latents.npy     (Cz, F, h, w) float16   VAE mean (deterministic)
    poses.npy       (T, 4, 4) float32       camera-to-world of the window's frames
    actions.npy     (T, 8) float32          actions aligned to the window (see training.data.align_actions)
    intrinsics.npy  (3, 3) float32          K at the model resolution
    json            caption, source key, window_start, has_actions, model, vae checkpoint

Keys are `<source key>_w<start:05d>`. Shards are written with pipeline.shards.ShardWriter
(atomic `.tmp` -> `.tar`), plus `dataset.json` with counts and provenance.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from contract.errors import UserError
from contract.sample import ACTIONS, INTRINSICS, JSON, LATENTS, POSES
from training.checkpoint import load_for_inference
from training.data import WindowPlan, WindowSpec, clip_window, provenance, resolve_shards
from training.data_windows import open_sample, window_stride_span


@dataclass
class EncodeResult:
    out: Path
    clips: int
    windows: int
    skipped_short: int
    shards: list[str]
    wall_s: float


def _windows(sample: dict[str, Any], spec: WindowSpec, limit: int) -> list[WindowPlan]:
    """Up to `limit` back-to-back windows from the clip's start (the training windows' stride rule)."""
    opened = open_sample(sample)
    stride, span = window_stride_span(opened.source_fps, spec.frames, spec.fps)
    plans = []
    for start in range(0, opened.num_frames - span + 1, span):
        indices = [start + k * stride for k in range(spec.frames)]
        plans.append(WindowPlan(opened.video, opened.meta, indices, stride, opened.arrays))
        if len(plans) == limit:
            break
    return plans


def encode_latents(checkpoint: str | Path, data: list[str], out: str | Path, *, windows_per_clip: int = 4,
                   batch_size: int = 4, on_progress: Callable[[int], None] | None = None) -> EncodeResult:
    """Write the VAE latents of up to `windows_per_clip` windows per clip of `data` as a dataset at `out`.

    `on_progress` gets the number of windows written so far after each batch."""
    from model.configs import get_config
    from model.vae import VideoVAE
    from pipeline.shards import DatasetLayout, ShardWriter, encode_json, encode_npy, write_dataset_json

    started = time.perf_counter()
    loaded = load_for_inference(checkpoint)
    if loaded.state.get("stage") != "vae":
        raise UserError(f"{loaded.path}: is a {loaded.state.get('stage')!r} checkpoint; encode needs a `stage: vae` one")
    model_cfg = get_config(loaded.state["model"], **loaded.state.get("model_overrides", {}))
    vae = VideoVAE(model_cfg.vae)
    vae.load_state_dict(loaded.weights)
    vae.eval()
    spec = WindowSpec(model_cfg.frames, model_cfg.fps, model_cfg.height, model_cfg.width)
    out = Path(out)
    if (out / "dataset.json").exists():
        raise UserError(f"--out {out}: already holds a dataset", hint="choose an empty folder")
    layout = DatasetLayout(out)
    writer = ShardWriter(layout, max_bytes=256_000_000)
    shards = [url for path in data for url in resolve_shards(path)]
    clips = windows = short = 0
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal windows
        if not pending:
            return
        video = torch.stack([w["video"] for w in pending]).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
        with torch.no_grad():
            mean, _ = vae.encode(video)
        for window, latent in zip(pending, mean, strict=False):
            key = f"{window['key']}_w{window['window_start']:05d}"
            writer.write(key, {
                LATENTS: encode_npy(latent.numpy().astype(np.float16)),
                POSES: encode_npy(window["poses"].numpy()),
                ACTIONS: encode_npy(window["actions"].numpy()),
                INTRINSICS: encode_npy(window["intrinsics"].numpy()),
                JSON: encode_json({"key": key, "source_key": window["key"], "caption": window["caption"],
                                     "window_start": window["window_start"],
                                     "has_actions": bool(window["has_actions"]),
                                     "model": loaded.state["model"], "vae_checkpoint": str(loaded.path),
                                     "frames": spec.frames, "fps": spec.fps,
                                     "height": spec.height, "width": spec.width}),
            })
            windows += 1
        pending.clear()
        if on_progress:
            on_progress(windows)

    for sample in wds.tarfile_to_samples()(iter([{"url": u} for u in shards])):
        clips += 1
        plans = _windows(sample, spec, windows_per_clip)
        short += not plans
        for plan in plans:
            pending.append(clip_window(sample, plan, spec))
            if len(pending) == batch_size:
                flush()
    flush()
    writer.close()
    if windows == 0:
        raise UserError(f"--data {' '.join(data)}: no clip is long enough for a {spec.frames}-frame window at {spec.fps} fps")
    write_dataset_json(layout.dataset_json_path, {
        "status": "complete", "created_by": "worldloom encode",
        "kind": "latents", "vae_checkpoint": str(loaded.path), "model": loaded.state["model"],
        "window": spec.__dict__, "inputs": provenance([(p, 1.0) for p in data]),
        "counts": {"clips": clips, "windows": windows, "skipped_short": short},
        "shards": writer.committed,
    })
    return EncodeResult(out, clips, windows, short, list(writer.committed), time.perf_counter() - started)


