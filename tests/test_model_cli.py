"""`worldloom model info` and the analytic cost model."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.configs import get_config
from model.counting import training_step_cost
from model.world_model import WorldModel


def _worldloom(capsys, *args: str) -> tuple[int, str, str]:
    """Run the real `worldloom` entry point in-process (exit code, stdout, stderr)."""
    from pipeline.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_model_info_prints_parameters_flops_and_memory(capsys) -> None:
    code, out, err = _worldloom(capsys, "model", "info", "2.6b", "--frames", "961", "--height", "704",
                                "--width", "1280")
    assert code == 0, err
    assert "blocks.self_attn" in out and "text_encoder (frozen)" in out and "VAE decoder" in out
    assert "(128, 121, 22, 40)" in out and "106,480" in out  # the guide's 60 s 720p token count
    assert "PFLOP" in out and "GiB" in out
    trainable = next(line for line in out.splitlines() if "world model (trainable)" in line)
    assert 2.52e9 <= int(trainable.split()[-2].replace(",", "")) <= 2.68e9


def test_model_info_bad_input_is_one_line_exit_2(capsys) -> None:
    code, _, err = _worldloom(capsys, "model", "info", "tiny", "--frames", "16")
    assert code == 2
    assert err.strip().count("\n") == 0 and "1 + 4*k" in err and "17" in err and "Traceback" not in err
    code, _, err = _worldloom(capsys, "model", "info", "giant")
    assert code == 2 and "unknown" in err
    code, _, err = _worldloom(capsys, "model", "info", "tiny", "--height", "60")
    assert code == 2 and "multiples of 8" in err


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
