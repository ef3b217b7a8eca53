"""Checkpoints: everything needed to continue a run exactly, reported through Ray Train.

A checkpoint directory holds

    model.pt        full (unsharded) state dict of the trained network, CPU tensors
    ema.pt          EMA weights of the trainable parameters (what `sample` uses)
    optimizer.pt    full optimizer state (keys are parameter names, so it loads into DDP or FSDP2)
    scheduler.pt    LR scheduler state
    state.json      step, data position, resolved config, model config name, MLflow run id
    rng_rank{r}.pt  per-rank RNG states (python, numpy, torch, the loss-noise generator)
    vae.pt          world stage only: the frozen VAE, so one checkpoint is enough to sample

Every rank writes only its own `rng_rank{r}.pt`; Ray Train merges the per-rank directories
into one in storage. The full state dicts are gathered with torch.distributed.checkpoint's
state-dict helpers, which work the same for a plain module, DDP and FSDP2 (gathering is a
collective, so every rank calls `save`).
"""
from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from pipeline.errors import UserError

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
NET_PREFIX = "net."  # the trained network is `TrainStep.net`; files store it without the prefix


@dataclass
class TrainingState:
    step: int
    data_position: dict[str, int]
    mlflow_run_id: str | None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _strip(state: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix(NET_PREFIX): v for k, v in state.items() if k.startswith(NET_PREFIX)}


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "generator": generator.get_state()}


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])


def save(directory: Path, *, step: int, model: torch.nn.Module, ema: "EMA", optimizer: torch.optim.Optimizer,
         scheduler: Any, data_position: dict[str, int], generator: torch.Generator, rank: int,
         meta: dict[str, Any], vae_state: dict[str, Any] | None = None) -> None:
    """Write this rank's part of a checkpoint into `directory` (collective: call on every rank)."""
    model_state = _strip(get_model_state_dict(model, options=FULL))
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=FULL)
    ema_state = ema.full_state()
    torch.save(rng_state(generator), directory / f"rng_rank{rank}.pt")
    if rank != 0:
        return
    torch.save(model_state, directory / "model.pt")
    torch.save(ema_state, directory / "ema.pt")
    torch.save(optimizer_state, directory / "optimizer.pt")
    torch.save(scheduler.state_dict(), directory / "scheduler.pt")
    if vae_state is not None:
        torch.save(vae_state, directory / "vae.pt")
    (directory / "state.json").write_text(json.dumps({"step": step, "data_position": data_position, **meta},
                                                     indent=1, sort_keys=True))


def restore(directory: Path, *, model: torch.nn.Module, ema: "EMA", optimizer: torch.optim.Optimizer,
            scheduler: Any, generator: torch.Generator, rank: int) -> TrainingState:
    """Load a checkpoint written by `save` into the (possibly wrapped) model and friends."""
    model_state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    set_model_state_dict(model, {NET_PREFIX + k: v for k, v in model_state.items()}, options=FULL)
    optimizer_state = torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=False)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=FULL)
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=False))
    ema.load_full_state(torch.load(directory / "ema.pt", map_location="cpu", weights_only=True))
    rng_file = directory / f"rng_rank{rank}.pt"
    if rng_file.exists():  # absent when the world size grew: that rank keeps its fresh seed
        set_rng_state(torch.load(rng_file, weights_only=False), generator)
    state = json.loads((directory / "state.json").read_text())
    return TrainingState(step=int(state["step"]), data_position=state["data_position"],
                         mlflow_run_id=state.get("mlflow_run_id"))


def report(step: int, metrics: dict[str, float], *, before_report: Any = None, **save_kwargs: Any) -> None:
    """Save this rank's part to a temporary folder and report it to Ray Train (a barrier).

    `before_report(folder)` runs on the saving rank with the complete local folder (rank 0 logs
    the final checkpoint to MLflow there). Ray copies the folder to
    `storage_path/<run>/checkpoint_<step>`; the temporary folder is removed afterwards.
    """
    import ray.train

    with tempfile.TemporaryDirectory(prefix="worldloom-ckpt-") as folder:
        directory = Path(folder)
        save(directory, step=step, **save_kwargs)
        if before_report is not None:
            before_report(directory)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=f"checkpoint_{step:08d}")


class EMA:
    """Exponential moving average of the trainable parameters, with a warm-up.

    The effective decay is min(decay, (1 + n) / (10 + n)) after n updates, so early EMA weights
    follow the model instead of staying near the random initialisation.
    """

    def __init__(self, named_parameters: list[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.params = {name.removeprefix(NET_PREFIX): p for name, p in named_parameters}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, param in self.params.items():
            self.shadow[name].lerp_(param.detach(), 1 - decay)

    def full_state(self) -> dict[str, Any]:
        """Gathered CPU tensors (collective for FSDP2's DTensors)."""
        full = {}
        for name, value in self.shadow.items():
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            full[name] = value.detach().cpu()
        return {"updates": self.updates, "decay": self.decay, "shadow": full}

    @torch.no_grad()
    def load_full_state(self, state: dict[str, Any]) -> None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            target = self.shadow[name]
            if isinstance(target, DTensor):
                value = distribute_tensor(value.to(target.device), target.device_mesh, target.placements)
            target.copy_(value)


# --------------------------------------------------------------------------- inference side


@dataclass
class LoadedCheckpoint:
    path: Path
    state: dict[str, Any]         # state.json
    weights: dict[str, Any]       # EMA weights merged over the model state (or the raw model state)
    vae_weights: dict[str, Any] | None


def load_for_inference(path: str | Path, *, use_ema: bool = True) -> LoadedCheckpoint:
    """A checkpoint folder (or a run folder: its latest checkpoint) -> weights for sampling/encoding."""
    folder = latest_checkpoint(Path(path))
    state = json.loads((folder / "state.json").read_text())
    weights = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    if use_ema and (folder / "ema.pt").exists():
        ema = torch.load(folder / "ema.pt", map_location="cpu", weights_only=True)
        weights.update(ema["shadow"])
    vae_file = folder / "vae.pt"
    vae_weights = torch.load(vae_file, map_location="cpu", weights_only=True) if vae_file.exists() else None
    return LoadedCheckpoint(folder, state, weights, vae_weights)


def latest_checkpoint(path: Path) -> Path:
    """`path` itself when it holds state.json, else its newest `checkpoint_*` child."""
    if (path / "state.json").is_file():
        return path
    candidates = sorted(p for p in path.glob("checkpoint_*") if (p / "state.json").is_file())
    if not candidates:
        raise UserError(f"{path}: not a worldloom checkpoint (no state.json) and no checkpoint_* folders inside",
                        hint="pass a folder like runs/train/<run>/checkpoint_00000040 or its run folder")
    return candidates[-1]
