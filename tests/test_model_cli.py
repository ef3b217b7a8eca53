"""`worldloom model info` and the analytic cost model."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model.configs import get_config
from model.counting import training_step_cost
from model.world_model import WorldModel


def _worldloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.timeout(120)
def test_model_info_prints_parameters_flops_and_memory() -> None:
    result = _worldloom("model", "info", "2.6b", "--frames", "961", "--height", "704", "--width", "1280")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "blocks.self_attn" in out and "text_encoder (frozen)" in out and "VAE decoder" in out
    assert "(128, 121, 22, 40)" in out and "106,480" in out  # the guide's 60 s 720p token count
    assert "PFLOP" in out and "GiB" in out
    trainable = next(line for line in out.splitlines() if "world model (trainable)" in line)
    assert 2.52e9 <= int(trainable.split()[-2].replace(",", "")) <= 2.68e9


@pytest.mark.timeout(120)
def test_model_info_bad_input_is_one_line_exit_2() -> None:
    result = _worldloom("model", "info", "tiny", "--frames", "16")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "1 + 4*k" in result.stderr and "17" in result.stderr
    result = _worldloom("model", "info", "giant")
    assert result.returncode == 2 and "unknown" in result.stderr


def test_analytic_flops_match_the_flop_counter_on_tiny() -> None:
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = WorldModel(cfg)
    text, mask = model.encode_text(["a"])
    x, t = torch.randn(1, 8, 5, 8, 8), torch.rand(1, 5)
    with FlopCounterMode(display=False) as counter:
        model(x, t, text, mask, action_features=model.action_features(torch.zeros(1, 17, 8)),
              rays=torch.zeros(1, 6, 5, 8, 8))
    cost = training_step_cost(cfg, 1, 1, 17, 64, 64, text_width=model.text_encoder.width)
    # the flop counter does not see the CPU flash-attention op: compare the rest exactly
    assert cost.forward_flops - cost.attention_flops == counter.get_total_flops()
    n, heads, dh, text_len = 80, cfg.dit.heads, cfg.dit.head_dim, cfg.dit.text.context_length
    four_maps = 2 * 2 * (4 * heads) * dh * (n * n + n * text_len)  # QK^T and AV, self + cross
    assert cost.attention_flops == cfg.dit.depth * four_maps
    assert cost.step_flops == 3 * cost.forward_flops
