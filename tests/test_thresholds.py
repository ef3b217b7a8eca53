"""One thresholds model and one motion score for generate and curate (issue 10).

Generate's and curate's configs both have a `thresholds:` section of the same model
(`pipeline.quality.ThresholdsConfig`), whose fields are exactly `QualityThresholds`' (the one
place defaults are written); both store motion as `pixel_motion` from `pipeline.quality.motion_score`.
Curate's old `scores.black_luma` / `black_fraction` / `frozen_noise` keys still load, as aliases
with one warning line each.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from contract.errors import UserError
from pipeline.quality import DEFAULT_THRESHOLDS, QualityThresholds, ThresholdsConfig, motion_score, pixel_scores


def test_one_model_with_the_names_and_defaults_of_quality_thresholds() -> None:
    from pipeline.curate.config import CurateConfig
    from pipeline.generate.config import GenerateConfig

    assert set(ThresholdsConfig.model_fields) == set(asdict(DEFAULT_THRESHOLDS))
    assert ThresholdsConfig().to_thresholds() == DEFAULT_THRESHOLDS == QualityThresholds()
    generate, curate = GenerateConfig().thresholds, CurateConfig().thresholds
    assert type(generate) is type(curate) is ThresholdsConfig and generate == curate


def test_a_threshold_set_in_either_config_reaches_the_rules(tmp_path: Path) -> None:
    from pipeline.curate.config import load_curate_config as load_curate
    from pipeline.generate.config import load_generate_config as load_generate

    (tmp_path / "g.yaml").write_text("thresholds: {min_sharpness: 7.5, frozen_diff: 0.01}\n")
    (tmp_path / "c.yaml").write_text("thresholds: {min_sharpness: 7.5, frozen_diff: 0.01}\n")
    for config in (load_generate(tmp_path / "g.yaml"), load_curate(tmp_path / "c.yaml")):
        rules = config.thresholds.to_thresholds()
        assert (rules.min_sharpness, rules.frozen_diff) == (7.5, 0.01)
    (tmp_path / "c.yaml").write_text("thresholds: {black_pixel_share: 1.5}\n")
    with pytest.raises(UserError, match="thresholds.black_pixel_share"):
        load_curate(tmp_path / "c.yaml")


def test_curate_legacy_score_keys_are_aliases_with_one_warning_line(tmp_path: Path, capsys) -> None:
    from pipeline.curate.config import load_curate_config as load_curate

    path = tmp_path / "old.yaml"
    path.write_text("scores: {black_luma: 0.2, black_fraction: 0.9, frozen_noise: 0.004, frames_sampled: 2}\n")
    config = load_curate(path)
    rules = config.thresholds.to_thresholds()
    got = (rules.black_luma, rules.black_pixel_luma, rules.black_pixel_share, rules.frozen_diff)
    assert got == (0.2, 0.2, 0.9, 0.004)
    assert config.scores.frames_sampled == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("warning:") and "deprecated" in line for line in lines)
    assert "scores.black_fraction is deprecated, write thresholds.black_pixel_share instead" in lines[1]
    path.write_text("scores: {frozen_noise: 0.004}\nthresholds: {frozen_diff: 0.002}\n")
    with pytest.raises(UserError, match="same setting"):
        load_curate(path)


def test_the_one_motion_score_is_what_both_pipelines_store_as_pixel_motion() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (9, 12, 16, 3), dtype=np.uint8)
    assert motion_score(frames) == pixel_scores(frames)["pixel_motion"] > 0.0
    assert motion_score(frames[:1]) == 0.0 and motion_score(np.repeat(frames[:1], 5, axis=0)) == 0.0
