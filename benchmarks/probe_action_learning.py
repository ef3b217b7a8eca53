"""Can the world model learn what an action means? A fast, in-process probe of the DiT alone.

    .venv/bin/python benchmarks/probe_action_learning.py --data runs/bench/action_following/data/train \
        --heldout runs/bench/action_following/data/heldout [--latents pooled|vae:CHECKPOINT] [--steps 800]

Why: the full recipe (benchmarks/bench_action_following.py) takes 30-45 minutes and answers only
"did it follow"; this probe answers "which part does not respond" in minutes. It decodes windows
once into memory, turns them into latents (either an oracle "VAE" that average-pools frames 8x8 and
keeps every `tc`-th frame, so motion survives exactly, or a trained VAE checkpoint), trains the
tiny world model on them in this process, and measures on held-out windows:

- velocity error with the true conditioning against the same windows with the yaw mirrored
  (actions and camera path of the opposite turn): > 1 means the model uses the direction;
- rollouts of "turn left" and "turn right" from the same start frame: the horizontal shift of the
  generated latents (upsampled to pixels) must have the command's sign.

Prints one JSON line per run. Results: docs/bench/model.md ("Action following", diagnosis).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_windows(path: str, count: int, seed: int) -> list[dict]:
    from training.data import WindowSpec, make_loader

    loader = make_loader([(path, 1.0)], WindowSpec(17, 8.0, 64, 64), batch_size=1, seed=seed, rank=0,
                         world_size=1, shuffle_buffer=64, loader_workers=0)
    return [loader.next_batch() for _ in range(count)]


def mirror(window: dict, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and camera path of the mirrored turn (yaw and left/right strafe negated)."""
    from contract.manifest import rollout_poses

    actions = window["actions"][0].numpy().copy()
    actions[:, 6] *= -1.0
    actions[:, [2, 3]] = actions[:, [3, 2]]
    poses = rollout_poses(actions, window["poses"][0].numpy()[0], 1.5, fps)
    return torch.from_numpy(actions)[None], torch.from_numpy(poses.astype(np.float32))[None]


def horizontal_shift(a: np.ndarray, b: np.ndarray, max_shift: int = 12) -> int:
    """Pixels the content moved left from a to b (best L1 match): > 0 = turn right."""
    errors = []
    for s in range(-max_shift, max_shift + 1):
        d = a[:, s:] - b[:, :a.shape[1] - s] if s >= 0 else a[:, :s] - b[:, -s:]
        errors.append((float(np.abs(d).mean()), s))
    return min(errors)[1]


class Latents:
    """video (B, T, H, W, 3) uint8 -> latents (B, C, F, h, w), normalised to unit variance per channel."""

    def __init__(self, kind: str, tc: int) -> None:
        self.kind, self.tc, self.vae = kind, tc, None
        if kind.startswith("vae:"):
            from model.configs import get_config
            from model.vae import VideoVAE
            from training.checkpoint import load_for_inference

            loaded = load_for_inference(kind[4:])
            cfg = get_config(loaded.state["model"], **loaded.state.get("model_overrides", {}))
            self.vae = VideoVAE(cfg.vae)
            self.vae.load_state_dict(loaded.weights)
            self.vae.eval()
        self.mean = self.std = None

    @property
    def channels(self) -> int:
        return 3 if self.vae is None else self.vae.config.latent_channels

    @torch.no_grad()
    def raw(self, video: torch.Tensor) -> torch.Tensor:
        x = video.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
        if self.vae is not None:
            return self.vae.encode(x)[0]
        keep = x[:, :, ::self.tc]
        b, c, f, h, w = keep.shape
        pooled = F.avg_pool2d(keep.transpose(1, 2).reshape(b * f, c, h, w), 8)
        return pooled.reshape(b, f, c, h // 8, w // 8).transpose(1, 2)

    def fit(self, latents: torch.Tensor) -> None:
        self.mean = latents.mean(dim=(0, 2, 3, 4), keepdim=True)
        self.std = latents.std(dim=(0, 2, 3, 4), keepdim=True)

    def __call__(self, video: torch.Tensor, normalise: bool) -> torch.Tensor:
        self.normalised = normalise
        z = self.raw(video)
        return (z - self.mean) / self.std if normalise else z


def decoded_yaw(latents: "Latents", z: torch.Tensor, window: dict) -> float:
    """Total yaw (degrees) the eval's camera estimator reads from the decoded latents z (1, C, F, h, w)."""
    from training.eval import camera as cam
    from training.eval import metrics

    video = latents.vae.decode(z * latents.std + latents.mean if latents.normalised else z)
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 3, 0).numpy()
    return float(metrics.yaw_total(cam.estimate_video(frames, window["intrinsics"][0].numpy().astype(np.float64))))


def vae_ceiling(latents: "Latents", held: list[dict], normalise: bool) -> tuple[float | None, int]:
    """Yaw-sign agreement of the estimator on encode -> decode of held-out windows that turn
    (and how many turned): what a perfect world model could reach through this VAE."""
    if latents.vae is None:
        return None, 0
    hits = []
    for w in held:
        yaw = float(w["actions"][0, :, 6].sum())
        if abs(yaw) < 10:
            continue
        z = latents(w["video"], normalise)
        hits.append(float(np.sign(decoded_yaw(latents, z, w)) == np.sign(yaw)))
    return (float(np.mean(hits)) if hits else None), len(hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--latents", default="pooled", help="pooled | vae:CHECKPOINT")
    parser.add_argument("--no-normalise", action="store_true", help="train on raw latent scale")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-windows", type=int, default=400)
    parser.add_argument("--eval-windows", type=int, default=16)
    parser.add_argument("--image-condition", type=float, default=None)
    parser.add_argument("--teacher-forcing", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from model.configs import get_config
    from model.sampler import iter_sample_latents
    from model.world_model import WorldModel
    from training.eval.rollout import command_actions, path_for
    from training.optim import build_adamw

    cfg = get_config("tiny", frames=17, fps=8.0, height=64, width=64)
    latents = Latents(args.latents, cfg.vae.temporal_compression)
    flow = cfg.flow
    if args.image_condition is not None:
        flow = replace(flow, image_condition_prob=args.image_condition)
    if args.teacher_forcing is not None:
        flow = replace(flow, teacher_forcing_prob=args.teacher_forcing)
    cfg = replace(cfg, flow=flow, dit=replace(cfg.dit, latent_channels=latents.channels),
                  vae=replace(cfg.vae, latent_channels=latents.channels))

    t0 = time.perf_counter()
    train = load_windows(args.data, args.train_windows, args.seed)
    held = load_windows(args.heldout, args.eval_windows, args.seed + 1)
    raw = torch.cat([latents.raw(w["video"]) for w in train])
    latents.fit(raw)
    normalise = not args.no_normalise
    z_train = (raw - latents.mean) / latents.std if normalise else raw
    load_s = time.perf_counter() - t0

    torch.manual_seed(args.seed)
    model = WorldModel(cfg)
    text, mask = model.encode_text([""])
    optimizer = build_adamw(model, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    actions = torch.cat([w["actions"] for w in train])
    poses = torch.cat([w["poses"] for w in train])
    Ks = torch.cat([w["intrinsics"] for w in train])
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        idx = torch.randint(0, len(train), (args.batch,), generator=generator)
        lr = args.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / args.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, _ = model.training_loss(z_train[idx], text_emb=text.expand(args.batch, -1, -1),
                                      text_mask=mask.expand(args.batch, -1), actions=actions[idx],
                                      camera_to_world=poses[idx], intrinsics=Ks[idx], generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0

    # velocity error at t = 0.5 (clean frame 0): true vs mirrored conditioning
    model.eval()
    errors = {"true": [], "mirrored": [], "none": []}
    with torch.no_grad():
        g = torch.Generator().manual_seed(123)
        for w in held:
            z = latents(w["video"], normalise)
            noise = torch.randn(z.shape, generator=g)
            t = torch.full((1, z.shape[2]), 0.5)
            t[:, 0] = 0.0
            x_t = (1 - t[:, None, :, None, None]) * z + t[:, None, :, None, None] * noise
            target = (noise - z)[:, :, 1:]
            m_actions, m_poses = mirror(w, cfg.fps)
            for name, (a, p) in {"true": (w["actions"], w["poses"]), "mirrored": (m_actions, m_poses),
                                 "none": (None, None)}.items():
                feats = None if a is None else model.action_features(a)
                rays = None if p is None else model.camera_rays(p, w["intrinsics"], z.shape[3], z.shape[4])
                v = model(x_t, t, text, mask, action_features=feats, rays=rays)
                errors[name].append(float((v[:, :, 1:] - target).pow(2).mean()))

        # rollouts: turn left / right from held-out starts, shift of the generated latents
        # (and, with a VAE, the eval's camera estimator on the decoded frames)
        agree, decoded_agree = [], []
        for i, w in enumerate(held):
            z0 = latents(w["video"][:, :1], normalise)
            shifts = {}
            for command, sign in (("turn_left", -1), ("turn_right", 1)):
                acts = command_actions(command, 17, 5.0)
                path = path_for(acts, w["poses"][0, 0].numpy(), 1.5, cfg.fps)
                feats = model.action_features(torch.from_numpy(acts)[None])
                rays = model.camera_rays(torch.from_numpy(path.astype(np.float32))[None], w["intrinsics"],
                                         z0.shape[3], z0.shape[4])
                chunks = list(iter_sample_latents(model, latent_frames=5, latent_height=z0.shape[3],
                                                  latent_width=z0.shape[4], image_latent=z0, action_features=feats,
                                                  rays=rays, cfg_text=1.0, cfg_action=1.5, steps=4, seed=i))
                out = torch.cat(chunks, dim=2)[0]  # (C, F, h, w)
                up = F.interpolate(out.transpose(0, 1), scale_factor=8, mode="bilinear").mean(1).numpy()
                shift = np.mean([horizontal_shift(up[f - 1], up[f]) for f in range(1, up.shape[0])])
                shifts[command] = float(shift)
                agree.append(float(np.sign(shift) == sign))
                if latents.vae is not None:
                    decoded_agree.append(float(np.sign(decoded_yaw(latents, out[None], w)) == sign))
    result = {
        "latents": args.latents, "normalised": normalise, "latent_std_raw": latents.std.flatten().tolist(),
        "steps": args.steps, "batch": args.batch, "lr": args.lr,
        "image_condition": cfg.flow.image_condition_prob, "teacher_forcing": cfg.flow.teacher_forcing_prob,
        "loss_first50": float(np.mean(losses[:50])), "loss_last50": float(np.mean(losses[-50:])),
        "v_err_true": float(np.mean(errors["true"])), "v_err_mirrored": float(np.mean(errors["mirrored"])),
        "v_err_none": float(np.mean(errors["none"])),
        "mirrored_over_true": float(np.mean(errors["mirrored"]) / np.mean(errors["true"])),
        "rollout_yaw_sign_agreement": float(np.mean(agree)),
        "decoded_yaw_sign_agreement": float(np.mean(decoded_agree)) if decoded_agree else None,
        "vae_ceiling_yaw_sign_agreement": vae_ceiling(latents, held, normalise)[0],
        "load_s": round(load_s, 1), "train_s": round(train_s, 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
