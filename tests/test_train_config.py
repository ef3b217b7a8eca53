"""Training config: YAML loading, one-line errors naming file and field, overrides, --data parsing."""
from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import UserError
from training.config import load_train_config, parse_config, parse_data_arg, with_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.mark.parametrize("name", ["tiny_vae.yaml", "tiny_world.yaml", "small_world.yaml", "2.6b_world.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_train_config(CONFIGS / name)
    assert config.scaling.max_failures != 0  # fault tolerance is on in every recipe
    assert config.run_name() == config.name


def test_unknown_field_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("stage: vae\nmodel: tiny\nsteps: 5\noptim:\n  learning_rate: 0.1\n")
    with pytest.raises(UserError) as error:
        load_train_config(path)
    line = error.value.one_line()
    assert str(path) in line and "optim.learning_rate" in line and "\n" not in line


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("stage: vae\nmodel: tiny\nsteps: 0\n")
    with pytest.raises(UserError, match="steps"):
        load_train_config(path)
    path.write_text("stage: video\nmodel: tiny\nsteps: 3\n")
    with pytest.raises(UserError, match="stage"):
        load_train_config(path)
    path.write_text("stage: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: not valid YAML"):
        load_train_config(path)
    with pytest.raises(UserError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")


def test_world_stage_needs_a_vae() -> None:
    with pytest.raises(UserError, match="vae_checkpoint"):
        parse_config({"stage": "world", "model": "tiny", "steps": 3}, "w.yaml")


def test_overrides_and_flat_params() -> None:
    config = parse_config({"stage": "vae", "model": "tiny", "steps": 3})
    changed = with_overrides(config, **{"scaling.num_workers": 4, "scaling.gpus_per_worker": None, "steps": 9})
    assert changed.scaling.num_workers == 4 and changed.steps == 9
    assert changed.scaling.gpus_per_worker == config.scaling.gpus_per_worker
    flat = changed.flat()
    assert flat["scaling.num_workers"] == "4" and flat["optim.betas"] == "[0.9, 0.99]"
    assert changed.run_name().startswith("vae-tiny-") and changed.run_name() != config.run_name()
    with pytest.raises(UserError, match="scaling.num_workers"):
        with_overrides(config, **{"scaling.num_workers": 0})


def test_data_argument_weights() -> None:
    assert parse_data_arg("data/a").path == "data/a" and parse_data_arg("data/a").weight == 1.0
    weighted = parse_data_arg("data/b:0.3")
    assert (weighted.path, weighted.weight) == ("data/b", 0.3)
    remote = parse_data_arg("s3://bucket/x/{000..009}.tar")
    assert remote.path == "s3://bucket/x/{000..009}.tar"
