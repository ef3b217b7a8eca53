"""Parameters, FLOPs and memory of a training step, plus a live-tensor peak-memory meter.

Counting is analytic (models are built on the meta device, so even 2.6b costs nothing):
- parameters: per component, straight from the modules;
- FLOPs per training step = 3 x forward (backward ~ 2 x forward), forward = 2 x multiply-adds of
  every linear layer over its tokens + the attention maps; differential attention computes four
  (N x M x dh) maps for QK^T and four for AV per head (2x standard attention). The chunk-causal
  mask does not reduce the count (the fused kernel computes masked blocks too);
- memory per training step: trainable weights + gradients + AdamW moments in float32 (16 B per
  parameter), the frozen text tower's weights, and saved activations estimated at ~36 x width
  values per token per block (counted op by op for one block: norms/modulation 2W, self-attention
  q/k/v + stacked four-map q/k/v + outputs 12W, cross-attention 2W + 6W, SwiGLU W + 4 x 8/3 W,
  residuals 3W), in bf16 on CUDA, float32 on CPU; with gradient checkpointing only block inputs
  plus one block's activations are kept.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from model.configs import DiTConfig, WorldModelConfig

ACTIVATION_VALUES_PER_TOKEN_PER_BLOCK = 36  # x width, see module docstring


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameters_by_component(model: nn.Module) -> dict[str, int]:
    """Top-level children of the world model (blocks split into self-attn / cross-attn / MLP / other)."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        if name == "blocks":
            for block in child.children():  # the ModuleList's blocks, in order
                for part_name, part in block.named_children():
                    key = {"self_attn": "blocks.self_attn", "cross_attn": "blocks.cross_attn",
                           "mlp": "blocks.mlp"}.get(part_name, "blocks.norms")
                    counts[key] = counts.get(key, 0) + count_parameters(part)
                own = sum(p.numel() for p in block.parameters(recurse=False))
                counts["blocks.modulation+camera_gate"] = counts.get("blocks.modulation+camera_gate", 0) + own
        else:
            counts[name] = count_parameters(child)
    return counts


@dataclass
class StepCost:
    tokens: int
    text_tokens: int
    latent_shape: tuple[int, int, int, int]
    forward_flops: float
    attention_flops: float
    step_flops: float
    attention_fraction: float
    trainable_params: int
    frozen_params: int
    optimizer_bytes: int
    activation_bytes: int
    activation_bytes_checkpointed: int

    @property
    def total_bytes(self) -> int:
        return self.optimizer_bytes + self.activation_bytes

    @property
    def total_bytes_checkpointed(self) -> int:
        return self.optimizer_bytes + self.activation_bytes_checkpointed


def block_forward_macs(dit: DiTConfig, tokens: int, text_tokens: int) -> tuple[int, int]:
    """(linear, attention) multiply-adds of one DiT block's forward over `tokens` video tokens
    (self-attention over all of them, cross-attention to `text_tokens`); batch 1."""
    d, inner, hidden = dit.width, dit.inner_dim, dit.swiglu_hidden
    kv = dit.kv_dim  # V1: k, v of 2h heads (= inner); V2: of h heads (grouped-query)
    lam = dit.heads if dit.attention == "diff_v2" else 0  # V2's token-wise lambda projection
    out_in = inner if dit.attention == "diff_v1" else dit.heads * dit.head_dim
    per_block_linear_macs = tokens * (d * (inner + 2 * kv + out_in + lam)  # self-attention q, k, v, out, lambda
                                      + d * (inner + out_in + lam)         # cross-attention q, out, lambda
                                      + 3 * d * hidden)                    # SwiGLU
    per_block_linear_macs += text_tokens * 2 * d * kv  # cross-attention k, v over text
    # V1: four stacked maps of width dh per differential head; V2: 2h standard heads of dh
    maps = (4 if dit.attention == "diff_v1" else 2) * dit.heads * dit.head_dim
    per_block_attention_macs = 2 * maps * tokens * tokens + 2 * maps * tokens * text_tokens
    return per_block_linear_macs, per_block_attention_macs


def training_step_cost(config: WorldModelConfig, trainable_params: int, frozen_params: int,
                       frames: int, height: int, width: int, batch: int = 1,
                       activation_bytes_per_value: int = 2, text_width: int | None = None) -> StepCost:
    """Analytic cost of one world-model training step (text tower and VAE excluded: the text is
    encoded once per caption and the latents are precomputed)."""
    dit = config.dit
    latent_shape = config.latent_shape(frames, height, width)
    channels, latent_frames, h, w = latent_shape
    _, ph, pw = dit.patch_size
    tokens = latent_frames * (h // ph) * (w // pw)
    text_tokens = dit.text.context_length
    text_width = dit.text.width if text_width is None else text_width
    d = dit.width
    per_block_linear_macs, per_block_attention_macs = block_forward_macs(dit, tokens, text_tokens)
    patch_volume = ph * pw
    io_macs = tokens * (patch_volume * channels * d                 # patch embedding
                        + d * patch_volume * channels               # final projection
                        + (patch_volume * 6 * d if dit.camera else 0))  # Plücker patch embedding
    tc = config.vae.temporal_compression
    conditioning_macs = latent_frames * (dit.timestep_dim * d + d * d      # timestep MLP
                                         + dit.action_dim * tc * d + d * d  # action MLP
                                         + 6 * d * d)                       # shared adaLN-single
    conditioning_macs += text_tokens * (text_width + d) * d                 # text projection
    forward_macs = dit.depth * (per_block_linear_macs + per_block_attention_macs) + io_macs + conditioning_macs
    forward_flops = 2.0 * forward_macs * batch
    attention_flops = 2.0 * dit.depth * per_block_attention_macs * batch
    values = ACTIVATION_VALUES_PER_TOKEN_PER_BLOCK * d * tokens * batch
    return StepCost(
        tokens=tokens, text_tokens=text_tokens, latent_shape=latent_shape,
        forward_flops=forward_flops, attention_flops=attention_flops, step_flops=3.0 * forward_flops,
        attention_fraction=attention_flops / forward_flops,
        trainable_params=trainable_params, frozen_params=frozen_params,
        optimizer_bytes=16 * trainable_params + 2 * frozen_params,
        activation_bytes=dit.depth * values * activation_bytes_per_value,
        activation_bytes_checkpointed=(dit.depth * d * tokens * batch + values) * activation_bytes_per_value,
    )


def kv_cache_bytes(config: WorldModelConfig, latent_frames: int, height: int, width: int,
                   bytes_per_value: int = 2) -> int:
    """Self-attention K/V bytes of `latent_frames` cached latent frames (one CFG branch, batch 1):
    depth x tokens x 2 (K and V) x kv_dim. V2 caches half of V1 (h instead of 2h heads of dh)."""
    dit = config.dit
    s = config.vae.spatial_compression
    _, ph, pw = dit.patch_size
    tokens = latent_frames * (height // s // ph) * (width // s // pw)
    return dit.depth * tokens * 2 * dit.kv_dim * bytes_per_value


def rollout_cache_frames(config: WorldModelConfig, seconds: float, window_chunks: int | None = 4) -> int:
    """Latent frames the sampler's sink + window cache holds after a `seconds` rollout
    (window_chunks=None: every frame, i.e. no eviction)."""
    dit = config.dit
    tc = config.vae.temporal_compression
    latent = 1 + -(-int(round(seconds * config.fps)) // tc)
    if window_chunks is None:
        return latent
    held = dit.first_chunk_frames + window_chunks * dit.chunk_frames
    return min(latent, held)


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created by torch ops while active (any device, CPU included).

    Every op output's storage is counted once until its Python storage object is collected, so
    the peak is the high-water mark of live tensor memory allocated inside the block (weights and
    tensors created before entering are not counted). CPU tensors bypass tracemalloc, hence this.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: dict[int, weakref.ref] = {}

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._seen:
            return
        size = storage.nbytes()

        def release(_: object, key: int = key, size: int = size) -> None:
            if self._seen.pop(key, None) is not None:
                self.live -= size

        try:
            self._seen[key] = weakref.ref(storage, release)
        except TypeError:  # storage without weakref support: count it as transient
            self.peak = max(self.peak, self.live + size)
            return
        self.live += size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                self._track(value)
        return out
