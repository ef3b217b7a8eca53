"""The per-worker training function Ray Train runs on every rank.

Recipe:
    1. read the rank, pick the device, seed everything from (seed, rank)
    2. build the stage's step module (`vae`: the autoencoder; `world`: the DiT, with the frozen
       VAE outside it) and wrap it: DDP for small models, FSDP2 (`fully_shard` per block, then
       the root) with activation checkpointing and bf16 for large ones on CUDA
    3. AdamW, linear warm-up then cosine decay, EMA of the trainable weights
    4. restore from `ray.train.get_checkpoint()` when Ray restarts us (failure) or on --resume
    5. loop: batch -> loss -> backward -> clip -> step -> EMA; rank 0 logs to MLflow every
       `log_every` steps; every `checkpoint.every` steps all ranks report a checkpoint
    6. at the end: a last checkpoint, a rollout and the checkpoint as MLflow artifacts

Only step 2 knows about the stage; the rest is shared.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training import checkpoint as ckpt
from training.config import TrainConfig
from training.data import DataPosition, WindowSpec, make_loader
from training.optim import build_adamw
from training.tracking import Rank0Tracker
from training.video_io import to_uint8_frames

FSDP_MIN_PARAMETERS = 300_000_000  # below this DDP is simpler and as fast


# --------------------------------------------------------------------------- step modules


class VaeStep(nn.Module):
    """Wraps the VAE so DDP/FSDP see the whole loss computation inside `forward` (gradient hooks fire)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return self.net.loss(batch["video"], generator=generator)


class WorldStep(nn.Module):
    """Wraps the world model; latents come from the frozen VAE (outside this module) or from shards."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        # per sample: clips without actions (real footage) train unconditionally, the others keep
        # their actions and camera even when the batch mixes both
        has_actions = torch.as_tensor(batch["has_actions"], dtype=torch.bool)
        if not bool(has_actions.any()):
            return self.net.training_loss(batch["latents"], captions=batch["caption"],
                                          intrinsics=batch["intrinsics"], generator=generator)
        return self.net.training_loss(
            batch["latents"], captions=batch["caption"], actions=batch["actions"],
            camera_to_world=batch["poses"], intrinsics=batch["intrinsics"], has_actions=has_actions,
            generator=generator,
        )


def model_config(config: TrainConfig):
    """The named model config with the clip (frames, fps, resolution) overridden by `data`."""
    from model.configs import get_config

    overrides: dict[str, Any] = {}
    if config.data.frames is not None:
        overrides["frames"] = config.data.frames
    if config.data.fps is not None:
        overrides["fps"] = config.data.fps
    if config.data.resolution is not None:
        overrides["height"], overrides["width"] = config.data.resolution
    return get_config(config.model, **overrides)


def tokens_per_sample(config: TrainConfig, model_cfg: Any) -> int:
    """Latent cells (vae) or DiT patches (world) per clip: the unit of tokens/s."""
    channels, frames, height, width = model_cfg.latent_shape()
    if config.stage == "vae":
        return frames * height * width
    pt, ph, pw = model_cfg.dit.patch_size
    return (frames // pt) * (height // ph) * (width // pw)


def build_frozen_vae(config: TrainConfig, model_cfg: Any, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    from model.vae import VideoVAE

    loaded = ckpt.load_for_inference(config.vae_checkpoint)
    if loaded.state.get("stage") != "vae":
        from contract.errors import UserError

        raise UserError(f"vae_checkpoint {config.vae_checkpoint}: is a {loaded.state.get('stage')!r} checkpoint",
                        hint="point vae_checkpoint at a checkpoint of a `stage: vae` run")
    vae = VideoVAE(model_cfg.vae)
    vae.load_state_dict(loaded.weights)
    vae.requires_grad_(False).eval().to(device)
    return vae, {k: v.clone() for k, v in loaded.weights.items()}


def build_step(config: TrainConfig, model_cfg: Any) -> nn.Module:
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    if config.stage == "vae":
        from model.vae import VideoVAE

        return VaeStep(VideoVAE(model_cfg.vae))
    from model.world_model import WorldModel

    return WorldStep(WorldModel(model_cfg))


def choose_strategy(config: TrainConfig, step_module: nn.Module, device: torch.device) -> str:
    if config.scaling.strategy != "auto":
        return config.scaling.strategy
    size = sum(p.numel() for p in step_module.parameters())
    return "fsdp" if device.type == "cuda" and size >= FSDP_MIN_PARAMETERS else "ddp"


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks FSDP2 shards one by one: children of every ModuleList named `blocks`."""
    blocks: list[nn.Module] = []
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and name.split(".")[-1] in ("blocks", "layers"):
            blocks.extend(child)
    return blocks


def wrap_fsdp(step_module: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2: activation checkpointing on each block, `fully_shard` per block, then the root.

    bf16 parameters/compute with fp32 gradient reduction on CUDA; fp32 on CPU (gloo has no bf16
    advantage and CPU autocast would only slow the tests down).
    """
    from torch.distributed._composable.checkpoint_activation import checkpoint as activation_checkpoint
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    step_module.to(device)
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if device.type == "cuda" else MixedPrecisionPolicy())
    for block in transformer_blocks(step_module):
        activation_checkpoint(block)
        fully_shard(block, mp_policy=policy)
    fully_shard(step_module, mp_policy=policy)
    return step_module


def wrap(config: TrainConfig, step_module: nn.Module, device: torch.device, strategy: str) -> nn.Module:
    world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if strategy == "fsdp" and world_size > 1:
        return wrap_fsdp(step_module, device)
    import ray.train.torch

    # world: dropout of text/actions can leave parameters unused on a step
    return ray.train.torch.prepare_model(
        step_module, parallel_strategy_kwargs={"find_unused_parameters": config.stage == "world"}
    )


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def lr_lambda(config: TrainConfig):
    warmup, total, floor = config.optim.warmup_steps, config.steps, config.optim.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# --------------------------------------------------------------------------- batches


def to_device_batch(batch: dict[str, Any], device: torch.device, vae: nn.Module | None,
                    autocast: bool) -> dict[str, Any]:
    """uint8 (B,T,H,W,3) -> float (B,3,T,H,W) in [-1,1]; world stage: + latents (B,Cz,F,h,w) of the frozen VAE."""
    out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if "video" in out:
        out["video"] = out["video"].permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
    if vae is not None and "latents" not in out:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            mean, _ = vae.encode(out["video"])
        out["latents"] = mean.float()
    return out


@torch.no_grad()
def measure_latent_statistics(config: TrainConfig, net: nn.Module, sources: list[tuple[str, float]],
                              spec: WindowSpec, vae: nn.Module | None, device: torch.device, rank: int,
                              world_size: int, autocast: bool) -> None:
    """Per-channel mean/std of the training latents, averaged over ranks, into the world model.

    Read with a loader of its own (another seed), so the training stream and its resumable
    position are untouched; every rank ends with the same statistics (all-reduced)."""
    batches = config.data.latent_statistics_batches
    if batches == 0:
        return
    loader = make_loader(sources, spec, batch_size=config.batch_size, seed=config.seed + 7919, rank=rank,
                         world_size=world_size, shuffle_buffer=config.data.shuffle_buffer, loader_workers=0,
                         latents=bool(config.data.latents), on_damaged=config.data.on_damaged)
    channels = net.latent_mean.numel()
    moments = torch.zeros(3, channels, dtype=torch.float64, device=device)  # count, sum, sum of squares
    for _ in range(batches):
        latents = to_device_batch(loader.next_batch(), device, vae, autocast)["latents"].double()
        per_channel = latents.transpose(0, 1).reshape(channels, -1)
        moments[0] += per_channel.shape[1]
        moments[1] += per_channel.sum(dim=1)
        moments[2] += per_channel.pow(2).sum(dim=1)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(moments)
    mean = moments[1] / moments[0]
    std = (moments[2] / moments[0] - mean.pow(2)).clamp(min=0).sqrt()
    net.set_latent_statistics(mean.float(), std.float())


# --------------------------------------------------------------------------- worker bookkeeping


@dataclass
class WorkerFiles:
    """`run_dir/workers/`: a heartbeat per rank (pid, node, step) and an event log.

    Operators read them to see where workers run; the fault-tolerance test reads the pid.
    """

    folder: Path
    rank: int

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def heartbeat(self, step: int, **extra: Any) -> None:
        import ray

        data = {"rank": self.rank, "pid": os.getpid(), "step": step, "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id(), "time": time.time(), **extra}
        temporary = self.folder / f".rank{self.rank}.json.tmp"
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.folder / f"rank{self.rank}.json")

    def event(self, **data: Any) -> None:
        with open(self.folder / "events.jsonl", "a") as handle:
            handle.write(json.dumps({"rank": self.rank, "pid": os.getpid(), "time": time.time(), **data}) + "\n")


def all_mean(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
        tensor /= torch.distributed.get_world_size()
    return tensor.tolist()


# --------------------------------------------------------------------------- the loop


def train_loop(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point. `loop_config`: config (dict), sources [(path, weight)], run_dir,
    tracking_uri, run_id, provenance."""
    import ray.train
    import ray.train.torch

    config = TrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if config.scaling.gpus_per_worker > 0 else torch.device("cpu")
    autocast = device.type == "cuda"
    files = WorkerFiles(Path(loop_config["run_dir"]) / "workers", rank)
    files.heartbeat(step=-1, phase="starting")

    model_cfg = model_config(config)
    vae, vae_state = (None, None)
    if config.stage == "world" and config.vae_checkpoint:  # encodes windows (unless data.latents), decodes rollouts
        vae, vae_state = build_frozen_vae(config, model_cfg, device)
    step_module = build_step(config, model_cfg)
    strategy = choose_strategy(config, step_module, device)
    model = wrap(config, step_module, device, strategy)
    inner = unwrap(model)
    trainable = [(n, p) for n, p in inner.named_parameters() if p.requires_grad]
    optimizer = build_adamw(inner, lr=config.optim.lr, betas=config.optim.betas,
                            weight_decay=config.optim.weight_decay)  # decay on weight matrices only
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
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
                world_size=world_size, strategy=strategy)

    tracker = Rank0Tracker(rank, loop_config.get("tracking_uri"), run_id,
                           system_metrics=config.mlflow.log_system_metrics)
    if start_step == 0:
        tracker.log_config(config.flat(), loop_config["resolved"])
        tracker.log_provenance(loop_config["provenance"])
    tracker.log_event(f"start at step {start_step} ({'restored' if restored_from else 'fresh'}), "
                      f"{world_size} workers, {strategy}")

    spec = WindowSpec(frames=model_cfg.frames, fps=model_cfg.fps, height=model_cfg.height, width=model_cfg.width)
    sources = [(config.data.latents, 1.0)] if (config.stage == "world" and config.data.latents) else [
        tuple(s) for s in loop_config["sources"]]
    loader = make_loader(sources, spec, batch_size=config.batch_size, seed=config.seed, rank=rank,
                         world_size=world_size, shuffle_buffer=config.data.shuffle_buffer,
                         loader_workers=config.data.loader_workers, position=position,
                         latents=bool(config.stage == "world" and config.data.latents),
                         on_damaged=config.data.on_damaged)
    if config.stage == "world" and start_step == 0 and restored_from is None:
        measure_latent_statistics(config, inner.net, sources, spec, vae, device, rank, world_size, autocast)
    tokens = tokens_per_sample(config, model_cfg) * config.batch_size * world_size
    meta = {"stage": config.stage, "model": config.model, "model_overrides": _overrides(config),
            "config": loop_config["resolved"], "mlflow_run_id": run_id, "world_size": world_size}

    def save_kwargs() -> dict[str, Any]:
        return dict(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                    data_position=loader.position.to_dict(), generator=generator, rank=rank, meta=meta,
                    vae_state=vae_state)

    window_wait = window_time = 0.0
    window_steps = 0
    window_start = time.perf_counter()
    model.train()
    for step in range(start_step, config.steps):
        begin = time.perf_counter()
        raw = loader.next_batch()
        waited = time.perf_counter() - begin
        batch = to_device_batch(raw, device, vae, autocast)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and strategy != "fsdp"):
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
        window_wait += waited
        window_time += time.perf_counter() - begin
        window_steps += 1
        files.heartbeat(step=done, loss=round(float(loss.detach()), 5))  # the CLI's progress bar shows it

        if done % config.mlflow.log_every == 0 or done == config.steps:
            skipped = float(raw["data_skipped"].max()) if "data_skipped" in raw else 0.0  # damaged samples skipped
            loss_mean, grad_mean, skipped_mean = all_mean([float(loss.detach()), float(grad_norm), skipped], device)
            elapsed = time.perf_counter() - window_start
            tracker.log_metrics({
                "loss": loss_mean, "grad_norm": grad_mean, "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": tokens * window_steps / elapsed,
                "samples_per_s": config.batch_size * world_size * window_steps / elapsed,
                "data_wait_fraction": window_wait / max(window_time, 1e-9),
                "data_skipped_samples": skipped_mean * world_size,
                **{f"train/{k}": v for k, v in metrics.items() if k != "loss" and isinstance(v, (int, float))},
            }, step=done)
            window_wait = window_time = 0.0
            window_steps = 0
            window_start = time.perf_counter()

        if config.mlflow.sample_every and done % config.mlflow.sample_every == 0 and done != config.steps:
            _log_rollout(config, model_cfg, inner, vae, batch, tracker, done, device)

        final = done == config.steps
        if done % config.checkpoint.every == 0 or final:
            if final:
                _log_rollout(config, model_cfg, inner, vae, batch, tracker, done, device)
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


def _overrides(config: TrainConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.data.frames is not None:
        out["frames"] = config.data.frames
    if config.data.fps is not None:
        out["fps"] = config.data.fps
    if config.data.resolution is not None:
        out["height"], out["width"] = config.data.resolution
    return out


@torch.no_grad()
def _log_rollout(config: TrainConfig, model_cfg: Any, inner: nn.Module, vae: nn.Module | None,
                 batch: dict[str, Any], tracker: Rank0Tracker, step: int, device: torch.device) -> None:
    """vae: input | reconstruction side by side; world: a short rollout from the batch's first caption.

    Runs on every rank (FSDP2 gathers parameters collectively); only rank 0 logs.
    """
    net = inner.net
    was_training = net.training
    net.eval()
    sharded = hasattr(inner, "unshard")  # FSDP2: gather the root's parameters; blocks gather on their own
    if sharded:
        inner.unshard()
    try:
        if config.stage == "vae":
            video = batch["video"][:1]
            mean, _ = net.encode(video)
            reconstruction = net.decode(mean)
            frames = np.concatenate([to_uint8_frames(video), to_uint8_frames(reconstruction)], axis=2)
        else:
            frames = _world_rollout(config, model_cfg, net, vae, batch, device)
        tracker.log_rollout(frames, model_cfg.fps, step)
    finally:
        if sharded:
            inner.reshard()
        net.train(was_training)


def _world_rollout(config: TrainConfig, model_cfg: Any, net: nn.Module, vae: nn.Module | None,
                   batch: dict[str, Any], device: torch.device) -> np.ndarray:
    from model.sampler import sample

    if vae is None:  # trained on precomputed latents: only a VAE can show pixels
        return np.zeros((1, model_cfg.height, model_cfg.width, 3), np.uint8)
    tc = model_cfg.vae.temporal_compression
    frames = 1 + tc * max(1, (config.mlflow.sample_frames - 1) // tc)
    return sample(net, vae, prompt=batch["caption"][0], num_frames=frames,
                  steps=config.mlflow.sample_steps, seed=config.seed)
