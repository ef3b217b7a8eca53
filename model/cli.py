"""`worldloom model ...`: inspect model configs without allocating them."""
from __future__ import annotations

import click

from model.errors import ModelError


def _human(value: float, unit: str = "") -> str:
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {suffix}{unit}"
    return f"{value:.0f} {unit}"


def _bytes(value: float) -> str:
    for scale, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {suffix}"
    return f"{value:.0f} B"


@click.group("model")
def model() -> None:
    """World-model configs: sizes, FLOPs and memory."""


@model.command("info")
@click.argument("config_name", metavar="CONFIG")
@click.option("--frames", type=int, default=None, help="video frames per clip (1 + tc*k); default: the config's")
@click.option("--seconds", type=float, default=None, help="clip length in seconds instead of --frames")
@click.option("--height", type=int, default=None, help="video height in pixels; default: the config's")
@click.option("--width", type=int, default=None, help="video width in pixels; default: the config's")
@click.option("--batch", type=int, default=1, show_default=True, help="clips per training step")
@click.option("--attention", type=click.Choice(["diff_v1", "diff_v2"]), default=None,
              help="attention variant (default: the config's)")
@click.option("--rollout-seconds", type=float, default=60.0, show_default=True,
              help="rollout length for the KV-cache rows")
def info(config_name: str, frames: int | None, seconds: float | None, height: int | None, width: int | None,
         batch: int, attention: str | None, rollout_seconds: float) -> None:
    """Parameters per component, and FLOPs and memory per training step, for CONFIG
    (tiny | small | base | 2.6b). The model is built on the meta device: nothing is allocated."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from model.configs import get_config
    from model.counting import (
        count_parameters,
        kv_cache_bytes,
        parameters_by_component,
        rollout_cache_frames,
        training_step_cost,
    )
    from model.vae import VideoVAE
    from model.world_model import WorldModel

    config = get_config(config_name, **({"attention": attention} if attention else {}))
    if rollout_seconds <= 0:
        raise ModelError(f"--rollout-seconds {rollout_seconds}: must be positive")
    if frames is not None and seconds is not None:
        raise ModelError("--frames and --seconds: give only one")
    if seconds is not None:
        tc = config.vae.temporal_compression
        frames = 1 + tc * -(-int(round(seconds * config.fps)) // tc)
    frames = config.frames if frames is None else frames
    height = config.height if height is None else height
    width = config.width if width is None else width
    config.latent_shape(frames, height, width)  # ModelError on a bad clip shape

    with torch.device("meta"):
        world = WorldModel(config)
        vae = VideoVAE(config.vae)
    console = Console()
    table = Table(title=f"{config.name} ({config.dit.attention}): parameters")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    for name, count in parameters_by_component(world).items():
        suffix = " (frozen)" if name == "text_encoder" else ""
        table.add_row(name + suffix, f"{count:,}")
    trainable = sum(p.numel() for p in world.trainable_parameters())
    frozen = count_parameters(world.text_encoder)
    table.add_row("world model (trainable)", f"{trainable:,}", style="bold")
    table.add_row("VAE encoder", f"{count_parameters(vae.encoder):,}")
    table.add_row("VAE decoder", f"{count_parameters(vae.decoder):,}")
    console.print(table)

    cost = training_step_cost(config, trainable, frozen, frames, height, width, batch=batch,
                              text_width=world.text_encoder.width)
    dit = config.dit
    step = Table(title=f"world-model training step: batch {batch} x {frames} frames {height}x{width} "
                       f"@ {config.fps:g} fps ({(frames - 1) / config.fps:.1f} s)")
    step.add_column("quantity")
    step.add_column("value", justify="right")
    step.add_row("latents (C, F, h, w)", str(cost.latent_shape))
    step.add_row("tokens (video / text)", f"{cost.tokens:,} / {cost.text_tokens}")
    step.add_row("layers x width, diff heads x head_dim", f"{dit.depth} x {dit.width}, {dit.heads} x {dit.head_dim}")
    step.add_row("attention", f"{dit.attention} (K/V {dit.kv_dim} values per token per layer)")
    step.add_row("FLOPs forward", _human(cost.forward_flops, "FLOP"))
    step.add_row("FLOPs per training step (3x forward)", _human(cost.step_flops, "FLOP"))
    step.add_row("attention share of FLOPs", f"{100 * cost.attention_fraction:.1f} %")
    step.add_row("weights + grads + AdamW (fp32)", _bytes(cost.optimizer_bytes))
    step.add_row("activations (bf16, no checkpointing)", _bytes(cost.activation_bytes))
    step.add_row("activations (bf16, block checkpointing)", _bytes(cost.activation_bytes_checkpointed))
    step.add_row("total memory per step (no ckpt / ckpt)",
                 f"{_bytes(cost.total_bytes)} / {_bytes(cost.total_bytes_checkpointed)}", style="bold")
    console.print(step)

    cache = Table(title=f"sampling KV cache: {rollout_seconds:g} s rollout at {height}x{width} "
                        f"@ {config.fps:g} fps, bf16, batch 1, per CFG branch (the sampler runs up to 3)")
    cache.add_column("cache")
    cache.add_column("latent frames", justify="right")
    cache.add_column("bytes", justify="right")
    for label, window in (("sink + window of 4 chunks (the sampler's default)", 4), ("no eviction", None)):
        held = rollout_cache_frames(config, rollout_seconds, window)
        cache.add_row(label, str(held), _bytes(kv_cache_bytes(config, held, height, width)))
    console.print(cache)
    console.print("Counts are analytic (see model/counting.py); the VAE is not part of the world-model step.")
