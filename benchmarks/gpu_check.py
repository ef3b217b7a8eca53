"""The GPU path in one script: numerics, kernels, speed and memory of the world model on one GPU.

    PYTHONPATH=. python benchmarks/gpu_check.py --json gpu_check.json        # on a GPU (<= 8 min on an H100)
    PYTHONPATH=. python benchmarks/gpu_check.py --cpu --json gpu_check.json  # tiny shapes, CPU (make test)

Checks (one table row each; the JSON holds every number):
  (a) bf16 autocast vs fp32: relative error of the loss and of the gradients of the `small` world
      model, forward + backward on one clip (fp32 reference with autocast and TF32 off);
  (b) which SDPA backend serves V1 and V2 attention at 720p chunk shapes (2.6b widths, a
      chunk-causal window of 720p latent frames), read from the profiler's op names; math fails;
  (c) forward + backward time and achieved TFLOP/s of one 2.6b block at that sequence, and of the
      whole `base` model under FSDP2 (one rank) + bf16 mixed precision + activation checkpointing,
      with MFU against the GPU's dense bf16 peak (table below, by device name);
  (d) peak memory of each of (c);
  (e) sampler throughput of `base` in frames/s at 8 steps (random weights: speed, not quality;
      the CPU smoke run uses 2 steps).

It imports only `model/` and torch (plus open_clip through the text tower), so a plain checkout on
PYTHONPATH runs it with PyTorch >= 2.11 on Python 3.11/3.12: no Ray, MLflow or install needed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a plain checkout, no install

from model.configs import WorldModelConfig, get_config  # noqa: E402
from model.counting import block_forward_macs, count_parameters, training_step_cost  # noqa: E402
from model.diff_attention import make_attention  # noqa: E402
from model.dit import DiTBlock, chunk_causal_mask  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets; the first
# entry whose key occurs in torch.cuda.get_device_name() wins, so specific names come first.
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GB200", 2500.0), ("B200", 2250.0), ("B100", 1750.0),
    ("H200", 989.4), ("GH200", 989.4), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
    ("H800", 989.4), ("H20", 148.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1), ("L40", 181.0),
    ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.2), ("RTX 6000 Ada", 364.2),
]
SDPA_OPS = {  # profiler op name fragment -> backend
    "_scaled_dot_product_flash_attention": "flash",
    "_flash_attention_forward": "flash",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_efficient_attention_forward": "efficient",
    "_scaled_dot_product_attention_math": "math",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def peak_tflops(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


class Shapes:
    """Everything that differs between the GPU run and the CPU smoke run."""

    def __init__(self, cpu: bool) -> None:
        self.cpu = cpu
        if cpu:  # tiny shapes: seconds on two cores, same code path
            self.numerics = replace(get_config("tiny"), frames=9, height=32, width=32)
            self.block = get_config("tiny")
            self.block_latent_hw, self.block_frames = (4, 4), 5
            self.base = replace(get_config("tiny"), frames=9, height=32, width=32)
            self.sample_frames, self.repeats, self.sample_steps = 5, 1, 2
        else:
            self.numerics = get_config("small")                  # 33 frames 256x256: 2,304 tokens
            self.block = get_config("2.6b")
            self.block_latent_hw = (704 // 32, 1280 // 32)        # 720p-class latent grid, 22 x 40
            self.block_frames = 13                                # a sink + window of 4 chunks: 11,440 tokens
            self.base = get_config("base")                       # 81 frames 480x832: 17,160 tokens
            self.sample_frames, self.repeats, self.sample_steps = 49, 3, 8


# --------------------------------------------------------------------------- helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: bool = True) -> float:
    """Median seconds of `fn` after one warm-up call (kernel selection, allocator, caches)."""
    if warmup:
        fn()
        synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def randomize_zero_inits(model: nn.Module) -> None:
    """The zero-initialised output layer would give every other weight a zero gradient."""
    with torch.no_grad():
        model.final.linear.weight.normal_(0, 0.02)
        model.final.linear.bias.normal_(0, 0.02)


@contextlib.contextmanager
def full_precision() -> Any:
    """fp32 reference: the world model's own `torch.autocast` switched off, no TF32."""
    original = torch.autocast
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    class NoAutocast(original):  # type: ignore[misc, valid-type]
        def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True, cache_enabled: Any = None):
            super().__init__(device_type, dtype=dtype, enabled=False, cache_enabled=cache_enabled)

    torch.autocast = NoAutocast  # type: ignore[misc]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.autocast = original  # type: ignore[misc]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def latents_for(config: WorldModelConfig, device: torch.device, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, *config.latent_shape()), generator=generator).to(device)


# --------------------------------------------------------------------------- (a) numerics


def check_numerics(shapes: Shapes, device: torch.device) -> dict[str, Any]:
    from model.world_model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(shapes.numerics).to(device)
    randomize_zero_inits(model)
    latents = latents_for(shapes.numerics, device)
    params = [p for p in model.trainable_parameters() if p.requires_grad]

    def loss_and_grads(autocast: bool) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        generator = torch.Generator(device=device).manual_seed(1)
        context = contextlib.nullcontext() if autocast else full_precision()
        with context, torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast and device.type == "cpu"):
            loss, _ = model.training_loss(latents, captions=["a street at dusk"], generator=generator)
        loss.backward()
        return float(loss), [p.grad.detach().float().clone() if p.grad is not None else torch.zeros_like(p)
                             for p in params]

    loss32, grads32 = loss_and_grads(autocast=False)
    loss16, grads16 = loss_and_grads(autocast=True)
    diff = torch.sqrt(sum((a - b).square().sum() for a, b in zip(grads16, grads32)))
    norm = torch.sqrt(sum(b.square().sum() for b in grads32))
    per_tensor = [float((a - b).norm() / b.norm()) for a, b in zip(grads16, grads32) if b.norm() > 1e-3 * norm / len(grads32) ** 0.5]
    result = {"config": shapes.numerics.name, "loss_fp32": loss32, "loss_bf16": loss16,
              "loss_rel_err": abs(loss16 - loss32) / max(abs(loss32), 1e-12),
              "grad_rel_err": float(diff / norm), "grad_rel_err_worst_tensor": max(per_tensor, default=0.0)}
    result["ok"] = result["loss_rel_err"] < 2e-2 and result["grad_rel_err"] < 1e-1
    return result


# --------------------------------------------------------------------------- (b) SDPA backends


def sdpa_backends(fn: Callable[[], Any], device: torch.device) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    found = set()
    for event in prof.key_averages():
        for fragment, backend in SDPA_OPS.items():
            if fragment in event.key:
                found.add(backend)
        if device.type == "cpu" and "flash_attention_for_cpu" in event.key:
            found.add("flash")
    return sorted(found)


def window_tokens(shapes: Shapes) -> tuple[int, torch.Tensor]:
    """Tokens of the chunk-causal window and its (N, N) mask (chunk 0 = 1 frame, then chunks of 3)."""
    dit = shapes.block.dit
    per_frame = shapes.block_latent_hw[0] * shapes.block_latent_hw[1]
    chunk = torch.tensor([dit.chunk_index_of_frame(f) for f in range(shapes.block_frames)])
    chunk_of_token = chunk.repeat_interleave(per_frame)
    return chunk_of_token.numel(), chunk_causal_mask(chunk_of_token, chunk_of_token)


def check_backends(shapes: Shapes, device: torch.device) -> dict[str, Any]:
    dit = shapes.block.dit
    tokens, mask = window_tokens(shapes)
    mask = mask.to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    x = torch.randn(1, tokens, dit.width, device=device, dtype=dtype, requires_grad=True)
    out: dict[str, Any] = {"tokens": tokens, "width": dit.width}
    for kind in ("diff_v1", "diff_v2"):
        attn = make_attention(kind, dit.width, dit.heads, dit.head_dim, layer_index=3).to(device, dtype)
        for label, m in (("masked", mask), ("unmasked", None)):
            def step(attn: nn.Module = attn, m: torch.Tensor | None = m) -> None:
                attn(x, mask=m).float().square().mean().backward()
            backends = sdpa_backends(step, device)
            out[f"{kind}_{label}"] = backends
    out["ok"] = all("math" not in v for k, v in out.items() if isinstance(v, list))
    return out


# --------------------------------------------------------------------------- (c, d) speed and memory


def check_block(shapes: Shapes, device: torch.device, peak: float | None) -> dict[str, Any]:
    cfg = shapes.block
    dit = cfg.dit
    tokens, mask = window_tokens(shapes)
    mask = mask.to(device)
    frames = shapes.block_frames
    text_tokens = dit.text.context_length
    results: dict[str, Any] = {}
    for kind in ("diff_v1", "diff_v2"):
        torch.manual_seed(0)
        block = DiTBlock(replace(dit, attention=kind), layer_index=3).to(device)
        x = torch.randn(1, tokens, dit.width, device=device, requires_grad=True)
        modulation = torch.randn(1, frames, 6, dit.width, device=device) * 0.1
        text = torch.randn(1, text_tokens, dit.width, device=device)
        hp, wp = shapes.block_latent_hw
        from model.rope import grid_positions, rope_angles

        rope = rope_angles(grid_positions(frames, hp, wp, 0, device=device), dit.head_dim, dit.rope_theta)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = block(x, modulation, camera=None, text=text, text_mask=None, rope=rope, mask=mask,
                            cache=None, write_cache=False)
            out.float().square().mean().backward()

        reset_peak(device)
        seconds = timed(step, device, shapes.repeats, warmup=not shapes.cpu)
        linear, attention = block_forward_macs(block_config := replace(dit, attention=kind), tokens, text_tokens)
        flops = 3 * 2 * (linear + attention)  # forward + backward = 3x forward
        achieved = flops / seconds / 1e12
        results[kind] = {"tokens": tokens, "seconds": seconds, "tflops": achieved,
                         "mfu": None if peak is None else achieved / peak, "peak_gib": peak_gib(device),
                         "params": count_parameters(block), "attention": block_config.attention}
        del block, x
    return results


class LossStep(nn.Module):
    """The world model's training loss as a `forward` (as training/loop.py's WorldStep does)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, latents: torch.Tensor, text_emb: torch.Tensor, text_mask: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        return self.net.training_loss(latents, text_emb=text_emb, text_mask=text_mask, generator=generator)[0]


def check_base_fsdp(shapes: Shapes, device: torch.device, peak: float | None) -> dict[str, Any]:
    """`base` on one rank: fully_shard per block + root with bf16 params / fp32 reduce (fp32 on
    CPU), activation checkpointing per block, one AdamW step; what training/loop.py does at scale."""
    import torch.distributed as dist
    from torch.distributed._composable.checkpoint_activation import checkpoint as activation_checkpoint
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from model.world_model import WorldModel

    created = False
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
        created = True
    try:
        torch.manual_seed(0)
        model = WorldModel(shapes.base).to(device)
        randomize_zero_inits(model)
        trainable = sum(p.numel() for p in model.trainable_parameters())
        frozen = count_parameters(model.text_encoder)
        text_emb, text_mask = model.encode_text(["a street at dusk"])  # before sharding: plain tensors
        step_module = LossStep(model)  # FSDP2 unshards at forward: the loss must run inside one
        policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                  if device.type == "cuda" else MixedPrecisionPolicy())
        for block in model.blocks:
            activation_checkpoint(block)
            fully_shard(block, mp_policy=policy)
        fully_shard(step_module, mp_policy=policy)
        optimizer = torch.optim.AdamW([p for p in model.trainable_parameters() if p.requires_grad], lr=1e-4)
        latents = latents_for(shapes.base, device)
        generator = torch.Generator(device=device)

        def step() -> None:
            generator.manual_seed(0)
            loss = step_module(latents, text_emb, text_mask, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        reset_peak(device)
        seconds = timed(step, device, shapes.repeats)
        cost = training_step_cost(shapes.base, trainable, frozen, shapes.base.frames, shapes.base.height,
                                  shapes.base.width, text_width=model.text_encoder.width)
        achieved = cost.step_flops / seconds / 1e12
        # activation checkpointing recomputes the blocks' forward: hardware FLOPs are ~4/3 of model FLOPs
        return {"tokens": cost.tokens, "trainable_params": trainable, "seconds": seconds, "tflops": achieved,
                "mfu": None if peak is None else achieved / peak, "peak_gib": peak_gib(device),
                "tokens_per_s": cost.tokens / seconds}
    finally:
        if created:
            dist.destroy_process_group()


def check_sampler(shapes: Shapes, device: torch.device) -> dict[str, Any]:
    from model.sampler import sample
    from model.vae import VideoVAE
    from model.world_model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(shapes.base).to(device).eval()
    vae = VideoVAE(shapes.base.vae).to(device).eval()

    def run() -> Any:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return sample(model, vae, prompt="a street at dusk", num_frames=shapes.sample_frames,
                          steps=shapes.sample_steps, seed=0)

    if not shapes.cpu:
        run()  # warm-up
    reset_peak(device)
    start = time.perf_counter()
    frames = len(run())
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"frames": frames, "steps": shapes.sample_steps, "seconds": seconds, "frames_per_s": frames / seconds,
            "peak_gib": peak_gib(device), "height": shapes.base.height, "width": shapes.base.width}


# --------------------------------------------------------------------------- main


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    rows = [("check", "result", "status")]
    a = report.get("a_numerics", {})
    if a:
        rows.append(("(a) bf16 vs fp32, " + a["config"], f"loss rel err {_fmt(a['loss_rel_err'])}, grad rel err "
                     f"{_fmt(a['grad_rel_err'])} (worst tensor {_fmt(a['grad_rel_err_worst_tensor'])})",
                     "ok" if a["ok"] else "CHECK"))
    b = report.get("b_backends", {})
    if b:
        for key, value in b.items():
            if isinstance(value, list):
                rows.append((f"(b) SDPA {key}, {b['tokens']} tokens", "/".join(value) or "none found",
                             "FAIL" if "math" in value else "ok"))
    for kind, c in report.get("c_block", {}).items():
        rows.append((f"(c,d) 2.6b block {kind}, {c['tokens']} tokens", f"{_fmt(c['seconds'])} s fwd+bwd, "
                     f"{_fmt(c['tflops'])} TFLOP/s, MFU {_fmt(c['mfu'])}, peak {_fmt(c['peak_gib'])} GiB", "info"))
    c = report.get("c_base_fsdp")
    if c:
        rows.append((f"(c,d) base FSDP2+bf16+AC, {c['tokens']} tokens", f"{_fmt(c['seconds'])} s/step, "
                     f"{_fmt(c['tflops'])} TFLOP/s, MFU {_fmt(c['mfu'])}, peak {_fmt(c['peak_gib'])} GiB", "info"))
    e = report.get("e_sampler")
    if e:
        rows.append((f"(e) base sampler, {e['steps']} steps, {e['frames']} frames", f"{_fmt(e['frames_per_s'])} frames/s, "
                     f"peak {_fmt(e['peak_gib'])} GiB", "info"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, width)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on the CPU (the smoke test)")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where to write the results")
    parser.add_argument("--skip", default="", help="comma-separated checks to skip: a,b,c,base,e")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the smoke test", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    if args.cpu:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    shapes = Shapes(args.cpu)
    name, peak = peak_tflops(device)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    report: dict[str, Any] = {"device": name, "bf16_peak_tflops": peak, "torch": torch.__version__,
                              "python": platform.python_version(), "cpu_mode": args.cpu}
    started = time.perf_counter()
    checks = [("a", "a_numerics", lambda: check_numerics(shapes, device)),
              ("b", "b_backends", lambda: check_backends(shapes, device)),
              ("c", "c_block", lambda: check_block(shapes, device, peak)),
              ("base", "c_base_fsdp", lambda: check_base_fsdp(shapes, device, peak)),
              ("e", "e_sampler", lambda: check_sampler(shapes, device))]
    for short, key, fn in checks:
        if short in skip:
            continue
        begin = time.perf_counter()
        try:
            report[key] = fn()
        except Exception as error:  # one failing check must not hide the others' numbers
            report[key + "_error"] = f"{type(error).__name__}: {str(error)[:300]}"
        report.setdefault("seconds", {})[short] = time.perf_counter() - begin
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["wall_s"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))
    print(f"{name} (bf16 peak {_fmt(peak)} TFLOP/s), torch {torch.__version__}, {report['wall_s']:.0f} s")
    print(table(report))
    for key, value in report.items():
        if key.endswith("_error"):
            print(f"ERROR {key}: {value}")
    failed = any(k.endswith("_error") for k in report) or not report.get("b_backends", {}).get("ok", True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
