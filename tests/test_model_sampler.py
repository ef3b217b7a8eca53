"""Sampler: constant memory over a 60 s rollout, image-to-video, determinism, output format."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from model.configs import get_config
from model.counting import PeakTensorMemory
from model.sampler import chunk_ranges, iter_sample_latents, sample
from model.vae import VideoVAE
from model.world_model import WorldModel


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids OpenMP contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> tuple[WorldModel, VideoVAE]:
    torch.manual_seed(0)
    cfg = get_config("tiny")
    return WorldModel(cfg).eval(), VideoVAE(cfg.vae).eval()


def test_peak_memory_meter_sees_growth() -> None:
    kept = []
    with PeakTensorMemory() as meter:
        for _ in range(4):
            kept.append(torch.ones(256, 1024))  # 1 MiB each, all alive
        peak_kept = meter.peak
        kept.clear()
        gc.collect()
        for _ in range(4):
            scratch = torch.ones(256, 1024) * 2  # at most three alive at once
    assert peak_kept >= 4 * 2**20
    assert meter.peak == peak_kept and scratch.sum() > 0


@pytest.mark.timeout(300)
def test_sixty_seconds_of_latents_with_constant_memory(tiny) -> None:
    model, _ = tiny
    cfg = model.config
    fps, seconds = cfg.fps, 60
    video_frames = 1 + int(fps * seconds)  # 961 frames at 16 fps
    latent_frames = cfg.vae.latent_frames(video_frames)  # 241
    ten_second_latents = cfg.vae.latent_frames(1 + int(fps * 10))  # 41
    actions = torch.zeros(1, video_frames, 8)
    actions[0, :, 0] = 1.0  # walk forward
    actions[0, ::3, 6] = 1.2  # and turn
    features = model.action_features(actions)
    model.encode_text(["a long road"])  # tokenizer and null text built outside the measurement

    produced, peak_at_10s = 0, None
    with PeakTensorMemory() as meter:
        for chunk in iter_sample_latents(model, latent_frames=latent_frames, latent_height=8, latent_width=8,
                                         prompt="a long road", action_features=features, cfg_text=1.0,
                                         cfg_action=1.0, steps=1, window_chunks=4, seed=0):
            assert torch.isfinite(chunk).all()
            produced += chunk.shape[2]
            if peak_at_10s is None and produced >= ten_second_latents:
                peak_at_10s = meter.peak
            del chunk
        peak_at_60s = meter.peak
    assert produced == latent_frames == 241
    assert (cfg.vae.video_frames(produced) - 1) / fps == pytest.approx(60.0)
    assert peak_at_10s > 0
    print(f"peak live tensor memory: 10 s {peak_at_10s / 2**20:.2f} MiB, 60 s {peak_at_60s / 2**20:.2f} MiB")
    assert peak_at_60s <= 1.2 * peak_at_10s, (peak_at_10s, peak_at_60s)


def test_image_to_video_keeps_the_image_and_is_deterministic(tiny) -> None:
    model, vae = tiny
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    pixels = torch.from_numpy(image).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]
    image_latent = vae.encode(pixels)[0]
    chunks = list(iter_sample_latents(model, latent_frames=5, latent_height=8, latent_width=8, prompt="x",
                                      image_latent=image_latent, steps=2, seed=3))
    assert [c.shape[2] for c in chunks] == [b - a for a, b in chunk_ranges(model, 5)] == [1, 2, 2]
    torch.testing.assert_close(chunks[0][:, :, :1], image_latent)

    k = np.array([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]])
    poses = np.tile(np.eye(4), (9, 1, 1))
    poses[:, 2, 3] = np.linspace(0, 0.4, 9)
    kwargs = dict(prompt="a road", num_frames=9, image=image, actions=np.zeros((9, 8), np.float32),
                  camera_to_world=poses, intrinsics=k, steps=2, seed=7)
    video = sample(model, vae, **kwargs)
    assert video.shape == (9, 64, 64, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, sample(model, vae, **kwargs))
    assert not np.array_equal(video, sample(model, vae, **{**kwargs, "seed": 8}))


def test_sampler_rejects_short_action_arrays(tiny) -> None:
    from model.errors import ModelError

    model, vae = tiny
    with pytest.raises(ModelError, match="actions"):
        sample(model, vae, num_frames=9, actions=np.zeros((5, 8), np.float32), steps=1)


def test_action_string_rolled_out_into_poses_steers_the_rollout() -> None:
    """End to end with the manifest helpers: action string -> (T, 8) actions -> camera path -> sampler."""
    from contract.manifest import camera_to_world, parse_action_string, rollout_poses

    torch.manual_seed(1)
    cfg = get_config("tiny")
    model, vae = WorldModel(cfg).eval(), VideoVAE(cfg.vae).eval()
    with torch.no_grad():  # a fresh model starts with zero-initialised action/camera layers: wake them
        for layer in (model.camera_embed.proj, model.action_embed.mlp[2], model.final.linear):
            layer.weight.normal_(0, 0.05)
    k = np.array([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]])
    start = camera_to_world([0.0, 0.0, 1.6], 0.0, 0.0)
    videos = {}
    for text in ("w-9", "jl-9"):
        actions = parse_action_string(text, frames=9)
        poses = rollout_poses(actions, start, 1.4, cfg.fps)
        videos[text] = sample(model, vae, prompt="a path", num_frames=9, actions=actions, camera_to_world=poses,
                              intrinsics=k, steps=2, seed=0)
    assert videos["w-9"].shape == (9, 64, 64, 3)
    assert not np.array_equal(videos["w-9"], videos["jl-9"])
