"""The tiny world model memorises one batch of generated clips on CPU.

The clips are rendered by the procedural backend from the quickstart manifest, at the tiny
config's frame count and resolution, with their real actions, camera poses and intrinsics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from model.configs import get_config
from model.vae import VideoVAE
from model.world_model import WorldModel


QUICKSTART = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "quickstart.yaml"


def generated_clips(frames: int, height: int, width: int) -> dict:
    """Render the first clip of each quickstart scene: video (B,3,T,H,W) in [-1,1], actions
    (B,T,8), camera_to_world (B,T,4,4), intrinsics (B,3,3) and the grounded captions."""
    from pipeline.caption import caption_clip
    from contract.manifest import resolve_manifest
    from unreal_bridge.procedural import ProceduralBackend

    data = yaml.safe_load(QUICKSTART.read_text())
    data["output"].update(width=width, height=height, frames=frames)
    data["passes"] = ["rgb"]
    clips = [clip for clip in resolve_manifest(yaml.safe_dump(data)).clips if clip["clip_index"] == 0]
    videos, actions, poses, intrinsics, captions = [], [], [], [], []
    for clip in clips:
        backend = ProceduralBackend()
        backend.open(clip)
        rendered = list(backend.frames(0, frames, passes=("rgb",)))
        backend.close()
        rgb = np.stack([frame.passes["rgb"] for frame in rendered])               # (T,H,W,3) uint8
        videos.append(torch.from_numpy(rgb).permute(3, 0, 1, 2).float() / 127.5 - 1.0)
        actions.append(torch.from_numpy(np.stack([frame.action for frame in rendered])).float())
        poses.append(torch.from_numpy(np.stack([frame.camera_to_world for frame in rendered])).float())
        intrinsics.append(torch.from_numpy(rendered[0].intrinsics).float())
        captions.append(caption_clip(clip))
    return {"video": torch.stack(videos), "actions": torch.stack(actions), "camera_to_world": torch.stack(poses),
            "intrinsics": torch.stack(intrinsics), "captions": captions}


@pytest.mark.timeout(300)
def test_tiny_model_overfits_one_batch() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        cfg = get_config("tiny")
        model, vae = WorldModel(cfg), VideoVAE(cfg.vae).eval()
        batch = generated_clips(cfg.frames, cfg.height, cfg.width)
        assert batch["video"].shape[0] == 2 and batch["video"].std() > 0.05  # two real, non-blank clips
        with torch.no_grad():
            latents, _ = vae.encode(batch["video"])
        latents = (latents - latents.mean()) / latents.std()
        text, mask = model.encode_text(batch["captions"])
        actions = batch["actions"]
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3, weight_decay=0.0)
        generator = torch.Generator()
        losses = []
        for _ in range(100):
            generator.manual_seed(1234)  # one batch: the same clips, noise and timesteps every step
            loss, _ = model.training_loss(latents, text_emb=text, text_mask=mask, actions=actions,
                                          camera_to_world=batch["camera_to_world"], intrinsics=batch["intrinsics"],
                                          generator=generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    final = sum(losses[-5:]) / 5
    print(f"overfit: loss {losses[0]:.4f} -> {final:.6f} in {len(losses)} steps")
    assert final <= 0.1 * losses[0], (losses[0], final)
