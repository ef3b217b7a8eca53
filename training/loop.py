"""The per-worker training function Ray Train runs on every rank: the recipe.

    1. read the rank, place the worker (device, autocast), seed everything from (seed, rank)
    2. build the stage's step module (training/steps.py: `vae` the autoencoder; `world` the DiT,
       with the frozen VAE outside it) and parallelize it (training/parallelize.py: DDP, or FSDP2
       with activation checkpointing and bf16 for large models on CUDA)
    3. AdamW (training/optim.py), warm-up + cosine (training/schedule.py), EMA of the trainable weights
    4. restore from `ray.train.get_checkpoint()` when Ray restarts us (failure) or on --resume
    5. loop: batch -> loss -> backward -> clip -> step -> EMA; rank 0 logs to MLflow every
       `log_every` steps; every `checkpoint.every` steps all ranks report a checkpoint
    6. at the end: a last checkpoint, a rollout (training/rollouts.py) and the export as MLflow artifacts

Only training/steps.py knows about the stage; this file is shared by both.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training import checkpoint as ckpt
from training.config import TrainConfig
from training.data import DataPosition, WindowSpec, make_loader
from training.latent_statistics import measure_latent_statistics
from training.optim import build_adamw
from training.parallelize import parallelize, place
from training.rollouts import log_rollout
from training.schedule import build_scheduler
from training.steps import (
    build_frozen_vae,
    build_step,
    model_config,
    model_overrides,
    to_device_batch,
    tokens_per_sample,
)
from training.tracking import Rank0Tracker
from training.workers import WorkerFiles, all_mean


class ThroughputWindow:
    """Time spent since the last metrics log: steps, step time and the part of it spent waiting for data."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wait = self.time = 0.0
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, waited: float, step_time: float) -> None:
        self.wait += waited
        self.time += step_time
        self.steps += 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def train_loop(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point. `loop_config`: config (dict), sources [(path, weight)], run_dir,
    tracking_uri, run_id, provenance."""
    import ray.train

    config = TrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    placement = place(config)
    device = placement.device
    files = WorkerFiles(Path(loop_config["run_dir"]) / "workers", rank)
    files.heartbeat(step=-1, phase="starting")

    model_cfg = model_config(config)
    vae, vae_state = (None, None)
    if config.stage == "world" and config.vae_checkpoint:  # encodes windows (unless data.latents), decodes rollouts
        vae, vae_state = build_frozen_vae(config, model_cfg, device)
    parallel = parallelize(config, build_step(config, model_cfg), placement)
    model, inner = parallel.model, parallel.inner
    trainable = [(n, p) for n, p in inner.named_parameters() if p.requires_grad]
    optimizer = build_adamw(inner, lr=config.optim.lr, betas=config.optim.betas,
                            weight_decay=config.optim.weight_decay)  # decay on weight matrices only
    scheduler = build_scheduler(optimizer, config)
    ema = ckpt.EMA(trainable, config.ema_decay)
    generator = torch.Generator(device=device).manual_seed(config.seed * 1000 + rank)
    np.random.seed((config.seed * 1000 + rank) % 2**32)

    start_step, position, run_id = 0, DataPosition(), loop_config.get("run_id")
    restored_from = ray.train.get_checkpoint()
    if restored_from is not None:
        with restored_from.as_directory() as folder:
            state = ckpt.restore(Path(folder), model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                                 generator=generator, rank=rank)
        start_step, position = state.step, DataPosition.from_dict(state.data_position)
    files.event(event="start", start_step=start_step, restored=restored_from is not None,
                world_size=world_size, strategy=parallel.strategy)

    tracker = Rank0Tracker(rank, loop_config.get("tracking_uri"), run_id,
                           system_metrics=config.mlflow.log_system_metrics)
    if start_step == 0:
        tracker.log_config(config.flat(), loop_config["resolved"])
        tracker.log_provenance(loop_config["provenance"])
    tracker.log_event(f"start at step {start_step} ({'restored' if restored_from else 'fresh'}), "
                      f"{world_size} workers, {parallel.strategy}")

    spec = WindowSpec(frames=model_cfg.frames, fps=model_cfg.fps, height=model_cfg.height, width=model_cfg.width)
    on_latents = config.stage == "world" and bool(config.data.latents)
    sources = [(config.data.latents, 1.0)] if on_latents else [tuple(s) for s in loop_config["sources"]]
    loader = make_loader(sources, spec, batch_size=config.batch_size, seed=config.seed, rank=rank,
                         world_size=world_size, shuffle_buffer=config.data.shuffle_buffer,
                         loader_workers=config.data.loader_workers, position=position,
                         latents=on_latents, on_damaged=config.data.on_damaged)
    if config.stage == "world" and start_step == 0 and restored_from is None:
        measure_latent_statistics(config, inner.net, sources, spec, vae, device, rank, world_size,
                                  placement.autocast)
    tokens = tokens_per_sample(config, model_cfg) * config.batch_size * world_size
    meta = {"stage": config.stage, "model": config.model, "model_overrides": model_overrides(config),
            "config": loop_config["resolved"], "mlflow_run_id": run_id, "world_size": world_size}

    def save_kwargs() -> dict[str, Any]:
        return dict(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                    data_position=loader.position.to_dict(), generator=generator, rank=rank, meta=meta,
                    vae_state=vae_state)

    window = ThroughputWindow()
    model.train()
    for step in range(start_step, config.steps):
        begin = time.perf_counter()
        raw = loader.next_batch()
        waited = time.perf_counter() - begin
        batch = to_device_batch(raw, device, vae, placement.autocast)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=parallel.step_autocast):
            loss, metrics = model(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in trainable], config.optim.grad_clip)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        optimizer.step()
        scheduler.step()
        ema.update()
        done = step + 1
        window.add(waited, time.perf_counter() - begin)
        files.heartbeat(step=done, loss=round(float(loss.detach()), 5))  # the CLI's progress bar shows it

        if done % config.mlflow.log_every == 0 or done == config.steps:
            skipped = float(raw["data_skipped"].max()) if "data_skipped" in raw else 0.0  # damaged samples skipped
            loss_mean, grad_mean, skipped_mean = all_mean([float(loss.detach()), float(grad_norm), skipped], device)
            elapsed = window.elapsed()
            tracker.log_metrics({
                "loss": loss_mean, "grad_norm": grad_mean, "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": tokens * window.steps / elapsed,
                "samples_per_s": config.batch_size * world_size * window.steps / elapsed,
                "data_wait_fraction": window.wait / max(window.time, 1e-9),
                "data_skipped_samples": skipped_mean * world_size,
                **{f"train/{k}": v for k, v in metrics.items() if k != "loss" and isinstance(v, (int, float))},
            }, step=done)
            window.reset()

        if config.mlflow.sample_every and done % config.mlflow.sample_every == 0 and done != config.steps:
            log_rollout(config, model_cfg, inner, vae, batch, tracker, done, device)

        final = done == config.steps
        if done % config.checkpoint.every == 0 or final:
            if final:
                log_rollout(config, model_cfg, inner, vae, batch, tracker, done, device)
            ckpt.report(done, {"step": done, "loss": float(loss.detach())}, **save_kwargs())
            if final:  # the export (EMA weights + VAE), not the optimizer state, goes to MLflow
                _log_export(inner, ema, vae_state, meta, done, rank, tracker)
            files.event(event="checkpoint", step=done)
    tracker.close()
    files.event(event="finished", step=config.steps)


def _log_export(inner: nn.Module, ema: ckpt.EMA, vae_state: dict[str, Any] | None, meta: dict[str, Any],
                step: int, rank: int, tracker: Rank0Tracker) -> None:
    """Gather the EMA weights once (collective), write an export on rank 0, log it as a model."""
    import tempfile

    from training import export

    weights = export.gather_live(inner, ema)
    if rank != 0 or not tracker.active:
        return
    with tempfile.TemporaryDirectory(prefix="worldloom-export-") as folder:
        out = export.write_export(Path(folder) / "export", weights=weights, vae_weights=vae_state,
                                  state={**meta, "step": step}, source=f"training step {step}")
        tracker.log_export(out, step)
