"""Parallelism, applied to a step module from outside (torchtitan's `parallelize` step).

The step modules (training/steps.py) know nothing of devices or ranks; this module decides
where they run and how they are split:

- device: the worker's GPU when the config asks for GPUs, else the CPU;
- strategy: `ddp` (every rank holds the whole model; Ray Train's `prepare_model`) or `fsdp`
  (FSDP2: `fully_shard` per transformer block, then the root, with activation checkpointing on
  each block). `auto` picks FSDP2 on CUDA for models of `FSDP_MIN_PARAMETERS` or more: below
  that, DDP is simpler and as fast;
- precision: bf16 autocast on CUDA (fp32 on CPU: gloo has no bf16 advantage and CPU autocast
  would only slow the tests down). Under FSDP2 the `MixedPrecisionPolicy` casts instead, so the
  step's forward runs without autocast there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.config import TrainConfig

FSDP_MIN_PARAMETERS = 300_000_000  # below this DDP is simpler and as fast


@dataclass(frozen=True)
class Placement:
    """Where a worker computes: its device, and whether bf16 autocast is used there (CUDA only)."""

    device: torch.device
    autocast: bool


@dataclass
class Parallelized:
    """A step module made ready for training.

    `model` is what forward and backward run on (DDP wrapper, FSDP2 module or the module itself);
    `inner` the step module underneath (its `.net` is the trained network) for checkpoints,
    EMA and rollouts.
    """

    model: nn.Module
    inner: nn.Module
    strategy: str        # ddp | fsdp
    step_autocast: bool  # autocast around the step's forward (off under FSDP2: its policy casts)


def place(config: TrainConfig) -> Placement:
    """The worker's device: Ray Train's GPU for this rank when GPUs were asked for, else the CPU."""
    import ray.train.torch

    device = ray.train.torch.get_device() if config.scaling.gpus_per_worker > 0 else torch.device("cpu")
    return Placement(device=device, autocast=device.type == "cuda")


def choose_strategy(config: TrainConfig, step_module: nn.Module, device: torch.device) -> str:
    """`scaling.strategy`, or for `auto`: FSDP2 on CUDA for large models, else DDP."""
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

    bf16 parameters/compute with fp32 gradient reduction on CUDA; fp32 on CPU.
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
    """FSDP2 when chosen and there is more than one rank; otherwise Ray Train's DDP (device placement included)."""
    world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if strategy == "fsdp" and world_size > 1:
        return wrap_fsdp(step_module, device)
    import ray.train.torch

    # world: dropout of text/actions can leave parameters unused on a step
    return ray.train.torch.prepare_model(
        step_module, parallel_strategy_kwargs={"find_unused_parameters": config.stage == "world"}
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The step module under a DDP wrapper (FSDP2 modifies the module in place: it is its own inner)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def parallelize(config: TrainConfig, step_module: nn.Module, placement: Placement) -> Parallelized:
    """Choose the strategy, wrap the step module and place it on the device."""
    strategy = choose_strategy(config, step_module, placement.device)
    model = wrap(config, step_module, placement.device, strategy)
    return Parallelized(model=model, inner=unwrap(model), strategy=strategy,
                        step_autocast=placement.autocast and strategy != "fsdp")
