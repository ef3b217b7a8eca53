"""Python API of the training part (what `worldloom train/encode/sample` and `make demo` call).

    from training import api
    result = api.train("training/configs/tiny_vae.yaml", ["data/quickstart"], num_workers=2)
    result.checkpoint            # storage path of the last checkpoint folder
    api.encode_latents(result.checkpoint, ["data/quickstart"], "data/quickstart_latents")
    world = api.train("training/configs/tiny_world.yaml", ["data/quickstart"],
                      overrides={"vae_checkpoint": result.checkpoint})
    api.sample(world.checkpoint, "a walk through a forest", seconds=2, out="out.mp4")   # -> Path

Ray: `train` connects to `ray_address` (or $RAY_ADDRESS) or starts a local instance when none
is running; inside an already initialised Ray (tests, notebooks) it reuses it.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.config import DataSource, TrainConfig, load_train_config, parse_data_arg, with_overrides
from training.encode_latents import EncodeResult, encode_latents
from training.sample import SampleResult, sample_video
from training.trainer import TrainResult
from training.trainer import train as _train


def resolve_config(config: str | Path | TrainConfig, *, num_workers: int | None = None,
                   gpus_per_worker: float | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    loaded = config if isinstance(config, TrainConfig) else load_train_config(config)
    source = "<config>" if isinstance(config, TrainConfig) else str(config)
    return with_overrides(loaded, source, **{"scaling.num_workers": num_workers,
                                             "scaling.gpus_per_worker": gpus_per_worker, **(overrides or {})})


def train(config: str | Path | TrainConfig, data: list[str] | None = None, *, ray_address: str | None = None,
          num_workers: int | None = None, gpus_per_worker: float | None = None, resume: bool = False,
          overrides: dict[str, Any] | None = None,
          on_progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train to completion. `data`: dataset folders / tars / patterns, `PATH:WEIGHT` to mix.
    `overrides`: dotted config keys, e.g. {"steps": 100, "vae_checkpoint": "..."}."""
    resolved = resolve_config(config, num_workers=num_workers, gpus_per_worker=gpus_per_worker, overrides=overrides)
    sources: list[DataSource] | None = [parse_data_arg(d) for d in data] if data else None
    return _train(resolved, sources, resume=resume, ray_address=ray_address, on_progress=on_progress)


def sample(checkpoint: str | Path, prompt: str, *, seconds: float, out: str | Path, image: str | Path | None = None,
           actions: str | None = None, camera: str | Path | None = None, steps: int = 8, seed: int = 0) -> Path:
    """Write a rollout mp4; returns its path."""
    return sample_video(checkpoint, prompt, seconds=seconds, out=out, image=image, actions=actions,
                        camera=camera, steps=steps, seed=seed).out


__all__ = ["EncodeResult", "SampleResult", "TrainResult", "encode_latents", "resolve_config", "sample", "train"]
