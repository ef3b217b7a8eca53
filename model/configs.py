"""Named model configurations: `tiny`, `small`, `base`, `2.6b`.

A `WorldModelConfig` bundles the video autoencoder (`VAEConfig`), the diffusion transformer
(`DiTConfig`), the flow-matching objective (`FlowConfig`) and the clip the config was sized for
(frames, fps, resolution). Configs are frozen dataclasses so that a name means one thing; derive
variants with `dataclasses.replace`.

Frame-count rule (causal VAE): a clip of ``T = 1 + tc * k`` video frames encodes to ``1 + k``
latent frames, where ``tc`` is the temporal compression. Latent frame 0 sees video frame 0 only
(so a single image encodes to one latent frame); latent frame ``i >= 1`` covers video frames
``(i - 1) * tc + 1 .. i * tc``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import log2
from typing import Any

from model.errors import ModelError

ATTENTION_KINDS = ("diff_v1", "diff_v2")


@dataclass(frozen=True)
class VAEConfig:
    """Causal 3D-convolution VAE. Compression must be powers of two (temporal 4|8, spatial 8|16|32)."""

    in_channels: int = 3
    latent_channels: int = 8
    temporal_compression: int = 4
    spatial_compression: int = 8
    base_channels: int = 32
    # channels per resolution level (len = number of spatial down-sampling levels)
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    res_blocks_per_level: int = 1
    kl_weight: float = 1e-6
    # bounded-memory chunked encode/decode: latent frames per chunk
    chunk_latent_frames: int = 4

    @property
    def spatial_levels(self) -> int:
        return int(log2(self.spatial_compression))

    @property
    def temporal_levels(self) -> int:
        return int(log2(self.temporal_compression))

    def latent_frames(self, video_frames: int) -> int:
        """Latent frames for a clip of `video_frames` (must be 1 + tc * k)."""
        tc = self.temporal_compression
        if video_frames < 1 or (video_frames - 1) % tc != 0:
            raise ModelError(
                f"frames={video_frames}: the causal VAE needs 1 + {tc}*k frames "
                f"(nearest: {1 + tc * max(1, round((video_frames - 1) / tc))}); set frames accordingly"
            )
        return 1 + (video_frames - 1) // tc

    def video_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_compression

    def __post_init__(self) -> None:
        if self.temporal_compression not in (1, 2, 4, 8):
            raise ModelError(f"vae.temporal_compression={self.temporal_compression}: use 4 or 8")
        if self.spatial_compression not in (4, 8, 16, 32):
            raise ModelError(f"vae.spatial_compression={self.spatial_compression}: use 8, 16 or 32")
        if len(self.channel_multipliers) != self.spatial_levels:
            raise ModelError(
                f"vae.channel_multipliers has {len(self.channel_multipliers)} entries: "
                f"give one per spatial level ({self.spatial_levels})"
            )


@dataclass(frozen=True)
class TextConfig:
    """Frozen open_clip text tower. `model_name` is an open_clip config name or "custom" (uses the
    explicit sizes below). `weights_path` is a local open_clip checkpoint (.safetensors); None = random init
    (tests, meta-device counting). Nothing is ever downloaded."""

    model_name: str = "custom"
    weights_path: str | None = None
    context_length: int = 32
    width: int = 64
    heads: int = 2
    layers: int = 2
    vocab_size: int = 49408


@dataclass(frozen=True)
class DiTConfig:
    """Differential-attention diffusion transformer over VAE latents."""

    latent_channels: int = 8
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (time, height, width) in latent cells
    width: int = 128
    depth: int = 4
    heads: int = 4  # differential heads (a standard layer of equal width has 2x this many)
    head_dim: int = 16  # q/k head width; v heads are 2x wider
    mlp_hidden: int | None = None  # SwiGLU hidden size; None -> 8/3 * width rounded up to 64
    qk_norm: bool = True
    # "diff_v1": Differential Transformer (per-layer scalar lambda, per-head RMSNorm, K/V of 2h heads);
    # "diff_v2": V2 (token-wise sigmoid lambda, no head norm, grouped-query K/V of h heads: half
    # the KV cache). V1 stays the default until V2 is measured better (docs/model.md)
    attention: str = "diff_v1"
    rope_theta: float = 10000.0
    # chunk-causal structure, in latent frames: chunk 0 has `first_chunk_frames` (the image frame
    # for image-to-video), then chunks of `chunk_frames`
    first_chunk_frames: int = 1
    chunk_frames: int = 2
    action_dim: int = 8  # the sample's action layout (contract/sample.py); model/ does not import contract
    camera: bool = True  # Plücker-ray conditioning from poses + intrinsics
    timestep_dim: int = 256  # sinusoidal features fed to the shared adaLN MLP
    text: TextConfig = field(default_factory=TextConfig)

    @property
    def inner_dim(self) -> int:
        """2 * heads * head_dim: the projection width (equals `width` for the standard sizes)."""
        return 2 * self.heads * self.head_dim

    @property
    def swiglu_hidden(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return ((8 * self.width // 3) + 63) // 64 * 64

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise ModelError(f"dit.attention={self.attention!r}: use one of {', '.join(ATTENTION_KINDS)}")

    @property
    def kv_dim(self) -> int:
        """Key (and value) values per token per self-attention layer: 2h*dh for V1, h*dh for V2."""
        return (2 if self.attention == "diff_v1" else 1) * self.heads * self.head_dim

    def chunk_index_of_frame(self, latent_frame: int) -> int:
        if latent_frame < self.first_chunk_frames:
            return 0
        return 1 + (latent_frame - self.first_chunk_frames) // self.chunk_frames


@dataclass(frozen=True)
class FlowConfig:
    """Rectified flow: x_t = (1 - t) x0 + t noise, target velocity noise - x0, t=0 is clean."""

    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    # resolution-dependent shift: shift = base_shift * sqrt(tokens_per_frame / reference_tokens)
    base_shift: float = 1.0
    reference_tokens_per_frame: int = 16
    max_shift: float = 12.0
    # diffusion forcing
    teacher_forcing_prob: float = 0.5  # else: every chunk gets an independent level
    context_noise_max: float = 0.1  # noise augmentation of context chunks (teacher-forcing mode)
    image_condition_prob: float = 0.5  # clean first latent frame (image-to-video)
    text_dropout_prob: float = 0.1  # for classifier-free guidance on text
    action_dropout_prob: float = 0.1  # for classifier-free guidance on actions + camera


@dataclass(frozen=True)
class WorldModelConfig:
    name: str
    vae: VAEConfig
    dit: DiTConfig
    flow: FlowConfig = field(default_factory=FlowConfig)
    frames: int = 17  # video frames of a training clip (1 + tc * k)
    fps: float = 16.0
    height: int = 64
    width: int = 64

    @property
    def latent_frames(self) -> int:
        return self.vae.latent_frames(self.frames)

    def latent_shape(self, frames: int | None = None, height: int | None = None,
                     width: int | None = None) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the latents of a clip."""
        frames = self.frames if frames is None else frames
        height = self.height if height is None else height
        width = self.width if width is None else width
        s = self.vae.spatial_compression
        if height % s or width % s:
            raise ModelError(f"resolution {height}x{width}: height and width must be multiples of {s}")
        return (self.vae.latent_channels, self.vae.latent_frames(frames), height // s, width // s)


_TINY = WorldModelConfig(
    name="tiny",
    vae=VAEConfig(latent_channels=8, temporal_compression=4, spatial_compression=8, base_channels=16,
                  channel_multipliers=(1, 2, 2)),
    dit=DiTConfig(latent_channels=8, patch_size=(1, 2, 2), width=128, depth=4, heads=4, head_dim=16,
                  first_chunk_frames=1, chunk_frames=2),
    flow=FlowConfig(reference_tokens_per_frame=16),
    frames=17, fps=16.0, height=64, width=64,
)

_SMALL = WorldModelConfig(
    name="small",
    vae=VAEConfig(latent_channels=16, temporal_compression=4, spatial_compression=8, base_channels=64,
                  channel_multipliers=(1, 2, 4)),
    dit=DiTConfig(latent_channels=16, patch_size=(1, 2, 2), width=512, depth=12, heads=4, head_dim=64,
                  first_chunk_frames=1, chunk_frames=3,
                  text=TextConfig(model_name="ViT-B-32", context_length=77)),
    flow=FlowConfig(reference_tokens_per_frame=256, base_shift=1.0),
    frames=33, fps=16.0, height=256, width=256,
)

_BASE = WorldModelConfig(
    name="base",
    vae=VAEConfig(latent_channels=32, temporal_compression=8, spatial_compression=16, base_channels=96,
                  channel_multipliers=(1, 2, 4, 4)),
    dit=DiTConfig(latent_channels=32, patch_size=(1, 1, 1), width=1024, depth=20, heads=8, head_dim=64,
                  first_chunk_frames=1, chunk_frames=3,
                  text=TextConfig(model_name="ViT-B-32", context_length=77)),
    flow=FlowConfig(reference_tokens_per_frame=256, base_shift=3.0),
    frames=81, fps=16.0, height=480, width=832,
)

_2_6B = WorldModelConfig(
    name="2.6b",
    vae=VAEConfig(latent_channels=128, temporal_compression=8, spatial_compression=32, base_channels=128,
                  channel_multipliers=(1, 2, 4, 4, 4)),
    dit=DiTConfig(latent_channels=128, patch_size=(1, 1, 1), width=2560, depth=24, heads=10, head_dim=128,
                  first_chunk_frames=1, chunk_frames=3,
                  text=TextConfig(model_name="ViT-L-14", context_length=77)),
    flow=FlowConfig(reference_tokens_per_frame=256, base_shift=3.0),
    frames=961, fps=16.0, height=704, width=1280,
)

CONFIGS: dict[str, WorldModelConfig] = {c.name: c for c in (_TINY, _SMALL, _BASE, _2_6B)}


def get_config(name: str, **overrides: Any) -> WorldModelConfig:
    """The named config; keyword overrides replace top-level fields (frames, fps, height, width),
    and `attention` replaces `dit.attention` (checkpoints and exports store it this way).

    `NAME:VARIANT` selects the attention variant by name, e.g. "2.6b:diff_v2", so a training
    config's `model:` field can pick V2 without a field of its own."""
    if ":" in name:
        name, variant = name.split(":", 1)
        overrides.setdefault("attention", variant)
    if name not in CONFIGS:
        raise ModelError(f"model config {name!r} is unknown: use one of {', '.join(CONFIGS)}")
    config = CONFIGS[name]
    attention = overrides.pop("attention", None)
    if attention is not None:
        config = replace(config, dit=replace(config.dit, attention=str(attention)))
    return replace(config, **overrides) if overrides else config
