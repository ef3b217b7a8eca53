"""Causal 3D VAE: frame-count rule, causality, exact chunked encode/decode, losses."""
from __future__ import annotations

import pytest
import torch

from model.configs import VAEConfig, get_config
from model.vae import VideoVAE
from model.errors import ModelError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions: one thread avoids OpenMP contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(VAEConfig(latent_channels=4, temporal_compression=4, spatial_compression=8,
                              base_channels=8, channel_multipliers=(1, 2, 2), chunk_latent_frames=2)).eval()


def test_frame_count_rule_and_shapes(vae: VideoVAE) -> None:
    video = torch.rand(1, 3, 13, 32, 16) * 2 - 1
    with torch.no_grad():
        mean, logvar = vae.encode(video)
        assert mean.shape == logvar.shape == (1, 4, 4, 4, 2)  # 13 = 1 + 4*3 -> 4 latent frames
        assert vae.decode(mean).shape == video.shape
    with pytest.raises(ModelError, match="1 \\+ 4\\*k"):
        vae.encode(torch.zeros(1, 3, 12, 32, 16))


def test_encoder_and_decoder_are_causal_in_time(vae: VideoVAE) -> None:
    video = torch.rand(1, 3, 13, 16, 16) * 2 - 1
    changed = video.clone()
    changed[:, :, 9:] = -changed[:, :, 9:]  # video frames 9.. belong to latent frame 3
    with torch.no_grad():
        a, _ = vae.encode(video)
        b, _ = vae.encode(changed)
        assert torch.equal(a[:, :, :3], b[:, :, :3]) and not torch.allclose(a[:, :, 3], b[:, :, 3])
        image_latent, _ = vae.encode(video[:, :, :1])  # an image is latent frame 0
        torch.testing.assert_close(image_latent, a[:, :, :1], atol=1e-6, rtol=0)
        z = torch.randn(1, 4, 4, 2, 2)
        z2 = z.clone()
        z2[:, :, 3] += 1
        x, x2 = vae.decode(z), vae.decode(z2)
        assert torch.equal(x[:, :, :9], x2[:, :, :9]) and not torch.allclose(x[:, :, 9:], x2[:, :, 9:])


def test_chunked_encode_and_decode_equal_one_pass(vae: VideoVAE) -> None:
    video = torch.rand(1, 3, 21, 16, 16) * 2 - 1  # 6 latent frames = 3 chunks of 2
    with torch.no_grad():
        mean, logvar = vae.encode(video)
        mean_c, logvar_c = vae.encode(video, chunked=True)
        torch.testing.assert_close(mean_c, mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(logvar_c, logvar, atol=1e-5, rtol=0)
        pieces = list(vae.iter_decode(mean))
        assert [p.shape[2] for p in pieces] == [5, 8, 8]
        torch.testing.assert_close(torch.cat(pieces, dim=2), vae.decode(mean), atol=1e-5, rtol=0)


def test_loss_trains_reconstruction() -> None:
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(latent_channels=4, base_channels=8, channel_multipliers=(1, 2, 2)))
    video = torch.zeros(1, 3, 5, 16, 16)
    video[:, 0, :, 4:12, 4:12] = 1.0
    video[:, 1] = -0.5
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    generator = torch.Generator()
    first = None
    for _ in range(25):
        loss, metrics = vae.loss(video, generator=generator.manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = metrics if first is None else first
    assert set(metrics) == {"loss", "recon_mse", "kl", "psnr"}
    assert metrics["recon_mse"] < 0.5 * first["recon_mse"] and metrics["kl"] > 0


@pytest.mark.parametrize("name", ["tiny", "small", "base", "2.6b"])
def test_named_vae_configs_build_on_meta(name: str) -> None:
    cfg = get_config(name)
    with torch.device("meta"):
        vae = VideoVAE(cfg.vae)
        video = torch.empty(1, 3, 1 + 2 * cfg.vae.temporal_compression, 64, 64)
        if 64 % cfg.vae.spatial_compression == 0:
            mean, _ = vae.encode(video)
            assert mean.shape[1:3] == (cfg.vae.latent_channels, 3)
