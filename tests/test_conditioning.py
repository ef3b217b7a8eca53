"""Conditioning path: per-sample action/camera mask, decay groups, cache-relative RoPE positions,
and the context noise the sampler commits (issue 16, section 1)."""
from __future__ import annotations

import pytest
import torch

from model import flow
from model.configs import get_config
from model.kv_cache import KVCache
from model.sampler import context_noise_level, iter_sample_latents, trained_window_chunks
from model.world_model import WorldModel
from model.errors import ModelError
from training.steps import WorldStep
from training.optim import build_adamw, split_parameters


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny")).eval()
    with torch.no_grad():  # open the zero-initialised paths so actions and camera change the output
        for module in (model.final.linear, model.camera_embed.proj, model.action_embed.mlp[2]):
            module.weight.normal_(0, 0.05)
            module.bias.normal_(0, 0.05)
    return model


def _batch(model: WorldModel, has_actions: list[bool], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    b, frames = len(has_actions), 3
    video_frames = cfg.vae.video_frames(frames)
    actions = torch.zeros(b, video_frames, 8)
    actions[:, :, 6] = 5.0  # turning right
    poses = torch.eye(4, dtype=torch.float64).repeat(b, video_frames, 1, 1)
    poses[:, :, 0, 3] = torch.linspace(0, 2, video_frames, dtype=torch.float64)
    return {
        "latents": torch.randn((b, cfg.dit.latent_channels, frames, 8, 8), generator=g),
        "caption": ["a walk"] * b,
        "actions": actions, "poses": poses,
        "intrinsics": torch.tensor([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]]).repeat(b, 1, 1),
        "has_actions": torch.tensor(has_actions),
    }


def _prediction(model: WorldModel, batch: dict, **overrides) -> torch.Tensor:
    """The velocity training_loss computed, captured from the model's forward."""
    seen = []
    handle = model.register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    try:
        kwargs = dict(captions=batch["caption"], actions=batch["actions"], camera_to_world=batch["poses"],
                      intrinsics=batch["intrinsics"], has_actions=batch["has_actions"],
                      generator=torch.Generator().manual_seed(3))
        kwargs.update(overrides)
        model.training_loss(batch["latents"], **kwargs)
    finally:
        handle.remove()
    return seen[0]


def test_mixed_batch_keeps_conditioning_on_samples_with_actions(tiny: WorldModel) -> None:
    cfg = tiny.config
    # no guidance dropout, so only has_actions decides
    model = WorldModel.__new__(WorldModel)
    model.__dict__.update(tiny.__dict__)
    model.config = cfg.__class__(**{**cfg.__dict__, "flow": cfg.flow.__class__(
        **{**cfg.flow.__dict__, "action_dropout_prob": 0.0, "text_dropout_prob": 0.0})})
    mixed = _batch(model, [True, False])
    with torch.no_grad():
        v_mixed = _prediction(model, mixed)
        v_all = _prediction(model, mixed, has_actions=torch.tensor([True, True]))
        v_none = _prediction(model, mixed, actions=None, camera_to_world=None, has_actions=None)
    # sample 0 (synthetic) keeps its conditioning exactly; sample 1 (real) is exactly unconditional
    assert torch.allclose(v_mixed[0], v_all[0], atol=1e-6)
    assert torch.allclose(v_mixed[1], v_none[1], atol=1e-6)
    assert (v_mixed[0] - v_none[0]).abs().max() > 1e-3  # conditioning really changes sample 0
    # and the step module the loop wraps passes the mask through (loss differs from all-dropped)
    step = WorldStep(model)
    loss_mixed, metrics = step(mixed, torch.Generator().manual_seed(3))
    assert metrics["conditioned"] == pytest.approx(0.5)
    loss_none, metrics_none = step(_batch(model, [False, False]), torch.Generator().manual_seed(3))
    assert metrics_none.get("conditioned", 0.0) == 0.0
    assert float(loss_mixed.detach()) != pytest.approx(float(loss_none.detach()))


def test_dropped_conditioning_equals_the_unconditional_branch(tiny: WorldModel) -> None:
    """A masked sample must match the sampler's no-action branch (None), not embed(zeros)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn((2, 8, 3, 8, 8), generator=g)
    t = torch.rand((2, 3), generator=g)
    text, mask = tiny.encode_text(["a", "b"])
    actions = tiny.action_features(torch.zeros(2, 9, 8))  # zeros: "stand still"
    with torch.no_grad():
        masked = tiny(x, t, text, mask, action_features=actions, condition_mask=torch.tensor([False, True]))
        none = tiny(x, t, text, mask)
        still = tiny(x, t, text, mask, action_features=actions)
    assert torch.allclose(masked[0], none[0], atol=1e-6)
    assert torch.allclose(masked[1], still[1], atol=1e-6)
    assert (still[0] - none[0]).abs().max() > 1e-4  # embed(0) is not "no action"


def test_weight_decay_only_on_weight_matrices(tiny: WorldModel) -> None:
    groups = split_parameters(tiny)
    decay, no_decay = set(groups.decay), set(groups.no_decay)
    assert not decay & no_decay
    trainable = {n for n, p in tiny.named_parameters() if p.requires_grad}
    assert decay | no_decay == trainable
    assert "blocks.0.self_attn.to_q.weight" in decay
    assert "blocks.0.mlp.gate.weight" in decay
    assert "patch_embed.weight" in decay
    for name in ("blocks.0.modulation", "blocks.0.camera_gate", "blocks.0.self_attn.lambda_q1",
                 "blocks.0.norm_cross.weight", "patch_embed.bias", "final.modulation",
                 "action_embed.mlp.2.weight", "action_embed.mlp.0.weight", "camera_embed.proj.weight"):
        assert name in no_decay, name
    assert all(tiny.get_parameter(n).dim() >= 2 for n in decay)
    assert not any(n.startswith("text_encoder.") for n in decay | no_decay)  # frozen
    optimizer = build_adamw(tiny, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_zero_initialised_action_embedding_is_not_decayed() -> None:
    """With no gradient, one AdamW step must leave the no-decay parameters untouched."""
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny"))
    with torch.no_grad():
        model.action_embed.mlp[2].weight.fill_(0.5)
        model.blocks[0].self_attn.to_q.weight.fill_(0.5)
    optimizer = build_adamw(model, lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    optimizer.step()
    assert torch.all(model.action_embed.mlp[2].weight == 0.5)
    assert torch.all(model.blocks[0].self_attn.to_q.weight < 0.5)


def test_sixty_second_rollout_never_feeds_an_unseen_time_position(monkeypatch) -> None:
    torch.manual_seed(0)
    cfg = get_config("tiny", frames=17, fps=8.0)  # trained on 5 latent frames: positions 0..4
    model = WorldModel(cfg).eval()
    trained_max = cfg.latent_frames - 1
    assert trained_window_chunks(model) == 1  # sink (1) + window (2) + new chunk (2) = 5 frames
    import model.world_model as world_module

    seen: list[int] = []
    original = world_module.grid_positions

    def spy(frames, height, width, frame_offset=0, device=None):
        seen.append(frame_offset + frames - 1)
        return original(frames, height, width, frame_offset, device=device)

    monkeypatch.setattr(world_module, "grid_positions", spy)
    caches: list[KVCache] = []
    original_cache = KVCache.__post_init__

    def track(self):
        original_cache(self)
        caches.append(self)

    monkeypatch.setattr(KVCache, "__post_init__", track)
    latent_frames = cfg.vae.latent_frames(1 + int(cfg.fps * 60))  # 60 s at 8 fps: 121 latent frames
    produced, key_max = 0, 0
    for chunk in iter_sample_latents(model, latent_frames=latent_frames, latent_height=8, latent_width=8,
                                     cfg_text=1.0, cfg_action=1.0, steps=1, window_chunks=8, seed=0):
        produced += chunk.shape[2]
        key_max = max(key_max, max(caches[0].frame_positions()))
    assert produced == latent_frames == 121
    assert max(seen) == trained_max  # reached, never exceeded, over 60 chunks
    assert key_max <= trained_max - cfg.dit.chunk_frames  # cached keys sit before the new chunk


def test_eviction_re_rotates_kept_keys_to_contiguous_positions() -> None:
    """After an eviction the kept keys equal keys rotated at contiguous positions from scratch
    (RoPE composes), and values are untouched."""
    from model.rope import apply_rope, grid_positions, rope_angles

    head_dim, theta, hw = 16, 10000.0, 4
    g = torch.Generator().manual_seed(0)
    raw = [torch.randn((1, 2, n * hw, head_dim), generator=g) for n in (1, 2, 2, 2)]  # un-rotated keys

    def rotated(k: torch.Tensor, first: int) -> torch.Tensor:
        frames = k.shape[2] // hw
        return apply_rope(k, *rope_angles(grid_positions(frames, 2, 2, first), head_dim, theta))

    cache = KVCache(depth=1, window_chunks=2)
    cache.set_rope(head_dim, theta)
    for k in raw:
        first = cache.next_position()
        cache.pending_frames = k.shape[2] // hw
        cache.commit(0, rotated(k, first), k * 2)
    # sink [0] + chunks at 1-2, 3-4, then 5-6 arrives: chunk 1-2 is evicted, the rest move back by 2
    assert cache.next_position() == 5 and cache.frame_positions() == [0, 1, 2, 3, 4]
    keys, values = cache.context(0)
    expected = torch.cat([rotated(raw[0], 0), rotated(raw[2], 1), rotated(raw[3], 3)], dim=2)
    assert torch.allclose(keys, expected, atol=1e-5)
    assert torch.equal(values, torch.cat([raw[0] * 2, raw[2] * 2, raw[3] * 2], dim=2))


def test_sampler_commits_generated_context_at_the_training_context_level(tiny: WorldModel) -> None:
    high = tiny.config.flow.context_noise_max
    assert context_noise_level(tiny, None) == pytest.approx(high / 2)
    with pytest.raises(ModelError):
        context_noise_level(tiny, 2 * high)
    commits: list[torch.Tensor] = []
    original = tiny.forward

    def spy(x, t, *args, **kwargs):
        if kwargs.get("write_cache"):
            commits.append(t.clone())
        return original(x, t, *args, **kwargs)

    tiny.forward = spy
    try:
        image = torch.randn((1, 8, 1, 8, 8))
        list(iter_sample_latents(tiny, latent_frames=5, latent_height=8, latent_width=8, image_latent=image,
                                 cfg_text=1.0, cfg_action=1.0, steps=2, seed=0))
    finally:
        del tiny.forward
    assert len(commits) == 3  # chunks [0], [1, 2], [3, 4]
    assert torch.all(commits[0] == 0.0)  # the real image: clean, as in image-conditioned training
    for t in commits[1:]:
        assert torch.allclose(t, torch.full_like(t, high / 2))
    # and that level is one training gives context chunks (teacher forcing: t ~ U(0, max))
    g = torch.Generator().manual_seed(0)
    t, weight = flow.sample_training_timesteps(4096, tiny.chunk_of_frames(0, 5), tiny.config.flow, 1.0, 0.0, g,
                                               torch.device("cpu"))
    context = t[weight == 0]
    assert context.numel() > 0 and float(context.max()) <= high
    assert float(context.min()) < high / 2 < float(context.max())


def test_latent_statistics_normalise_training_and_sampling_returns_vae_scale(tiny: WorldModel) -> None:
    """The model trains on (z - mean) / std and the sampler hands back VAE-scale latents; weights
    saved before the statistics existed load as identity statistics."""
    batch = _batch(tiny, [True, True])
    mean, std = torch.linspace(-1, 1, 8), torch.linspace(0.05, 0.4, 8)
    scaled = batch["latents"] * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)
    kwargs = dict(captions=batch["caption"], actions=batch["actions"], camera_to_world=batch["poses"],
                  intrinsics=batch["intrinsics"])
    reference, _ = tiny.training_loss(batch["latents"], generator=torch.Generator().manual_seed(5), **kwargs)
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    try:
        tiny.set_latent_statistics(mean, std)
        loss, _ = tiny.training_loss(scaled, generator=torch.Generator().manual_seed(5), **kwargs)
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
        image = scaled[:1, :, :1]
        first = next(iter_sample_latents(tiny, latent_frames=3, latent_height=8, latent_width=8,
                                         image_latent=image, steps=1, cfg_text=1.0, seed=0))
        torch.testing.assert_close(first[:, :, :1], image)  # the image frame comes back at VAE scale
        assert torch.all(state["latent_std"] == 1) and torch.all(state["latent_mean"] == 0)
        old = {k: v for k, v in state.items() if not k.startswith("latent_")}
        tiny.load_state_dict(old)  # a checkpoint from before the statistics: identity, as it was trained
        assert torch.all(tiny.latent_std == 1) and torch.all(tiny.latent_mean == 0)
    finally:
        tiny.load_state_dict(state)
