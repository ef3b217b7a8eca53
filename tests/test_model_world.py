"""World model structure: chunk causality, KV-cache equivalence, configs, camera rays, flow."""
from __future__ import annotations

import math

import pytest
import torch

from model import flow
from model.conditioning import group_actions, plucker_rays
from model.configs import CONFIGS, FlowConfig, get_config
from model.counting import count_parameters
from model.kv_cache import KVCache
from model.world_model import WorldModel
from model.errors import ModelError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids OpenMP contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny")).eval()
    with torch.no_grad():  # the zero-initialised output/camera/action layers would hide everything
        for module in (model.final.linear, model.camera_embed.proj, model.action_embed.mlp[2]):
            module.weight.normal_(0, 0.05)
            module.bias.normal_(0, 0.05)
    return model


def _inputs(model: WorldModel, frames: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.randn((1, cfg.dit.latent_channels, frames, 8, 8), generator=g)
    t = torch.rand((1, frames), generator=g)
    video_frames = cfg.vae.video_frames(frames)
    actions = model.action_features(torch.randn((1, video_frames, 8), generator=g))
    c2w = torch.eye(4, dtype=torch.float64).repeat(1, video_frames, 1, 1)
    c2w[0, :, 0, 3] = torch.linspace(0, 1, video_frames, dtype=torch.float64)
    k = torch.tensor([[[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]]])
    rays = model.camera_rays(c2w, k, 8, 8)
    text, mask = model.encode_text(["a road through a forest"])
    return x, t, text, mask, actions, rays


def test_changing_a_later_chunk_never_changes_earlier_outputs(tiny: WorldModel) -> None:
    x, t, text, mask, actions, rays = _inputs(tiny)  # 7 latent frames: chunks [0], [1,2], [3,4], [5,6]
    with torch.no_grad():
        base = tiny(x, t, text, mask, action_features=actions, rays=rays)
        for first_changed in (1, 3, 5):
            x2, t2, a2, r2 = x.clone(), t.clone(), actions.clone(), rays.clone()
            x2[:, :, first_changed:] += 1.0
            t2[:, first_changed:] = 0.5 * t2[:, first_changed:]
            a2[:, first_changed:] += 1.0
            r2[:, :, first_changed:] += 1.0
            out = tiny(x2, t2, text, mask, action_features=a2, rays=r2)
            assert (out[:, :, :first_changed] - base[:, :, :first_changed]).abs().max() == 0.0
            assert (out[:, :, first_changed:] - base[:, :, first_changed:]).abs().max() > 1e-3


def test_within_a_chunk_attention_is_bidirectional(tiny: WorldModel) -> None:
    x, t, text, mask, actions, rays = _inputs(tiny)
    with torch.no_grad():
        base = tiny(x, t, text, mask)
        x2 = x.clone()
        x2[:, :, 2] += 1.0  # second frame of chunk [1, 2] influences the first
        out = tiny(x2, t, text, mask)
    assert (out[:, :, 1] - base[:, :, 1]).abs().max() > 1e-4
    assert (out[:, :, 0] - base[:, :, 0]).abs().max() == 0.0


def test_kv_cached_incremental_inference_equals_full_forward(tiny: WorldModel) -> None:
    x, t, text, mask, actions, rays = _inputs(tiny)
    with torch.no_grad():
        full = tiny(x, t, text, mask, action_features=actions, rays=rays)
        cache = KVCache(depth=tiny.config.dit.depth, window_chunks=None)
        pieces = []
        for start, end in ((0, 1), (1, 3), (3, 5), (5, 7)):
            pieces.append(tiny(x[:, :, start:end], t[:, start:end], text, mask,
                               action_features=actions[:, start:end], rays=rays[:, :, start:end],
                               frame_offset=start, cache=cache, write_cache=True))
    incremental = torch.cat(pieces, dim=2)
    assert (incremental - full).abs().max().item() <= 1e-5
    assert cache.committed_chunks == 4


def test_rolling_window_keeps_sink_and_bounded_tokens(tiny: WorldModel) -> None:
    x, t, text, mask, _, _ = _inputs(tiny, frames=11)
    cache = KVCache(depth=tiny.config.dit.depth, window_chunks=2)
    sizes = []
    with torch.no_grad():
        tiny(x[:, :, :1], t[:, :1], text, mask, cache=cache, write_cache=True)
        sink_keys = cache.context(0)[0][:, :, :16].clone()
        for start in range(1, 11, 2):
            tiny(x[:, :, start:start + 2], t[:, start:start + 2], text, mask, frame_offset=start,
                 cache=cache, write_cache=True)
            sizes.append(cache.cached_tokens())
    tokens_per_frame = 16
    assert sizes == [48, 80, 80, 80, 80]  # sink (1 frame) + at most 2 chunks of 2 frames
    assert max(sizes) == tokens_per_frame * (1 + 2 * 2)
    torch.testing.assert_close(cache.context(0)[0][:, :, :16], sink_keys)  # sink never evicted


def test_2_6b_builds_on_meta_with_2_52_to_2_68_billion_parameters() -> None:
    with torch.device("meta"):
        model = WorldModel(get_config("2.6b"))
    trainable = sum(p.numel() for p in model.trainable_parameters())
    assert 2.52e9 <= trainable <= 2.68e9, trainable
    assert all(p.device.type == "meta" for p in model.parameters())
    dit = model.config.dit
    assert (dit.width, dit.depth, dit.heads, dit.head_dim) == (2560, 24, 10, 128)


def test_tiny_is_under_ten_million_parameters_including_vae_and_text() -> None:
    from model.vae import VideoVAE

    cfg = get_config("tiny")
    with torch.device("meta"):
        total = count_parameters(WorldModel(cfg)) + count_parameters(VideoVAE(cfg.vae))
    assert total < 10_000_000


def test_config_sizes_grow_and_bad_names_are_user_errors() -> None:
    counts = []
    for name in ("tiny", "small", "base", "2.6b"):
        with torch.device("meta"):
            counts.append(sum(p.numel() for p in WorldModel(CONFIGS[name]).trainable_parameters()))
    assert counts == sorted(counts)
    with pytest.raises(ModelError, match="unknown"):
        get_config("huge")
    with pytest.raises(ModelError, match="1 \\+ 4\\*k"):
        get_config("tiny").vae.latent_frames(16)


def test_actions_are_grouped_per_latent_frame() -> None:
    actions = torch.arange(9 * 8, dtype=torch.float32).view(1, 9, 8)
    grouped = group_actions(actions, 4)  # 9 frames -> 3 latent frames of 4 x 8
    assert grouped.shape == (1, 3, 32)
    assert torch.equal(grouped[0, 0, :24], torch.zeros(24)) and torch.equal(grouped[0, 0, 24:], actions[0, 0])
    assert torch.equal(grouped[0, 1], actions[0, 1:5].flatten())
    assert torch.equal(grouped[0, 2], actions[0, 5:9].flatten())


def test_plucker_rays_follow_the_opencv_camera() -> None:
    k = torch.tensor([[[4.0, 0, 4.0], [0, 4.0, 4.0], [0, 0, 1]]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1)
    c2w[0, 1, :3, 3] = torch.tensor([1.0, 2.0, 3.0])  # second frame translated
    rays = plucker_rays(c2w, k, 2, 2, pixel_stride=4)  # pixels (2, 2), (6, 2), (2, 6), (6, 6)
    assert rays.shape == (1, 6, 2, 2, 2)
    d = rays[0, 3:, 0]
    torch.testing.assert_close(d.norm(dim=0), torch.ones(2, 2))
    # top-left cell looks left (-x) and up (-y), forward +z
    assert d[0, 0, 0] < 0 and d[1, 0, 0] < 0 and d[2, 0, 0] > 0
    assert rays[0, :3, 0].abs().max() < 1e-6  # first camera at the origin: zero moment
    moment = torch.cross(torch.tensor([1.0, 2.0, 3.0]).expand(2, 2, 3), rays[0, 3:, 1].permute(1, 2, 0), dim=-1)
    torch.testing.assert_close(rays[0, :3, 1].permute(1, 2, 0), moment)


def test_flow_timesteps_shift_and_diffusion_forcing() -> None:
    config = FlowConfig(base_shift=1.0, reference_tokens_per_frame=16, teacher_forcing_prob=0.0,
                        image_condition_prob=0.0)
    assert flow.resolution_shift(config, 16) == 1.0
    assert flow.resolution_shift(config, 64) == pytest.approx(2.0)
    t = torch.linspace(0, 1, 11)
    shifted = flow.shift_timesteps(t, 3.0)
    assert torch.all(shifted >= t) and shifted[0] == 0 and shifted[-1] == 1
    chunk_of_frame = torch.tensor([0, 1, 1, 2, 2])
    g = torch.Generator().manual_seed(0)
    levels, weight = flow.sample_training_timesteps(64, chunk_of_frame, config, 1.0, 0.0, g, torch.device("cpu"))
    assert torch.equal(levels[:, 1], levels[:, 2]) and torch.equal(levels[:, 3], levels[:, 4])
    assert (levels[:, 1] != levels[:, 3]).all()  # independent level per chunk
    assert weight.min() == 1.0
    teacher = FlowConfig(teacher_forcing_prob=1.0, context_noise_max=0.1, image_condition_prob=1.0)
    levels, weight = flow.sample_training_timesteps(64, chunk_of_frame, teacher, 1.0, 1.0, g, torch.device("cpu"))
    assert (levels[:, 0] == 0).all() and (weight[:, 0] == 0).all()  # clean, unscored image frame
    context = weight == 0
    assert (levels[context] <= 0.1).all() and (weight[:, -1] == 1).all()
    x0, noise = torch.randn(2, 3, 5, 4, 4), torch.randn(2, 3, 5, 4, 4)
    xt = flow.interpolate(x0, noise, torch.full((2, 5), 0.25))
    torch.testing.assert_close(xt, 0.75 * x0 + 0.25 * noise)


def test_training_loss_is_finite_and_backpropagates(tiny: WorldModel) -> None:
    model = WorldModel(get_config("tiny"))
    latents = torch.randn(2, 8, 5, 8, 8)
    actions = torch.randn(2, 17, 8)
    c2w = torch.eye(4).repeat(2, 17, 1, 1)
    k = torch.tensor([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]]).repeat(2, 1, 1)
    loss, metrics = model.training_loss(latents, captions=["a", "b"], actions=actions, camera_to_world=c2w,
                                        intrinsics=k, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(loss.item()) and metrics["loss"] == pytest.approx(loss.item())
    assert model.final.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.text_encoder.parameters())  # frozen text tower


def test_text_tower_loads_local_weights_and_stays_frozen(tmp_path) -> None:
    from dataclasses import replace

    from model.configs import TextConfig
    from model.text_encoder import TextEncoder

    torch.manual_seed(3)
    source = TextEncoder(TextConfig())
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in source.tower.state_dict().items()}, path)
    torch.manual_seed(4)
    loaded = TextEncoder(replace(TextConfig(), weights_path=str(path)))
    fresh = TextEncoder(TextConfig())
    captions = ["a bridge at dusk", ""]
    emb, mask = loaded.encode(captions)
    torch.testing.assert_close(emb, source.encode(captions)[0])
    assert not torch.allclose(emb, fresh.encode(captions)[0])
    assert mask[0].sum() > mask[1].sum() >= 2  # start/end tokens even for the empty caption
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(ModelError, match="weights_path"):
        TextEncoder(replace(TextConfig(), weights_path=str(tmp_path / "missing.pt")))
    pickled = tmp_path / "clip.pt"  # a pickle checkpoint is refused by content, never unpickled
    torch.save(source.tower.state_dict(), pickled)
    with pytest.raises(ModelError, match=r"text.weights_path=.*clip.pt: a torch.save zip \(pickle\) file.*save_file"):
        TextEncoder(replace(TextConfig(), weights_path=str(pickled)))
