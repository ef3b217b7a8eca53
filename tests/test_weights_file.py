"""User weights files are safetensors only: read without pickle, anything else refused in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from model.weights_file import WeightsFileError, check_safetensors, find_in_folder, load_state_dict
from contract.errors import UserError


@pytest.fixture
def no_torch_load(monkeypatch):
    """Any torch.load (pickle) during the test fails it."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a user's file")

    monkeypatch.setattr(torch, "load", refuse)


def test_safetensors_loads_and_module_prefix_is_stripped(tmp_path: Path, no_torch_load) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"module.a.weight": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}, path)
    state = load_state_dict(path)
    assert sorted(state) == ["a.weight", "b"]
    torch.testing.assert_close(state["a.weight"], torch.arange(6.0).view(2, 3))


def test_pickles_and_junk_are_refused_by_content(tmp_path: Path) -> None:
    pickled = tmp_path / "w.pt"
    torch.save({"a": torch.ones(2)}, pickled)
    renamed = tmp_path / "renamed.safetensors"   # the suffix is not trusted
    renamed.write_bytes(pickled.read_bytes())
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    huge_header = tmp_path / "huge.safetensors"
    huge_header.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    not_json = tmp_path / "text.safetensors"
    not_json.write_bytes((4).to_bytes(8, "little") + b"abcd")
    for path, kind in [(pickled, "pickle"), (renamed, "pickle"), (legacy, "pickle"), (empty, "0 bytes"),
                       (huge_header, "not a safetensors"), (not_json, "no safetensors JSON header")]:
        with pytest.raises(WeightsFileError, match=kind) as caught:
            check_safetensors(path)
        assert "\n" not in str(caught.value) and "save_file" in str(caught.value)
    with pytest.raises(WeightsFileError, match="file not found"):
        load_state_dict(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"  # a valid header whose tensor bytes are cut off
    save_file({"a": torch.ones(64)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-16])
    with pytest.raises(WeightsFileError, match="unreadable safetensors"):
        load_state_dict(truncated)


def test_folders_give_their_safetensors_file_never_a_pickle(tmp_path: Path) -> None:
    torch.save({"a": torch.ones(1)}, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(WeightsFileError, match=r"only pickle files \(open_clip_pytorch_model.bin\)"):
        find_in_folder(tmp_path)
    save_file({"a": torch.ones(1)}, tmp_path / "weights.safetensors")
    assert find_in_folder(tmp_path) == tmp_path / "weights.safetensors"
    save_file({"a": torch.ones(1)}, tmp_path / "open_clip_model.safetensors")
    assert find_in_folder(tmp_path) == tmp_path / "open_clip_model.safetensors"


def _tiny_clip_checkpoint(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A seeded ViT-S-32 saved as safetensors, and its embedding of some frames."""
    from pipeline.embed import ClipEmbedder, EmbedSettings

    source = ClipEmbedder(EmbedSettings(model="ViT-S-32", frames=2, seed=7))
    path = tmp_path / "clip" / "open_clip_model.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, path)
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 32, 48, 3), dtype=np.uint8)
    return path, frames, source.embed_clip(frames)


def test_clip_embedder_loads_safetensors_without_torch_load(tmp_path: Path, monkeypatch) -> None:
    from pipeline.embed import ClipEmbedder, EmbedSettings

    path, frames, expected = _tiny_clip_checkpoint(tmp_path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("torch.load called")))
    for weights in (str(path), f"local-dir:{path.parent}"):
        loaded = ClipEmbedder(EmbedSettings(model="ViT-S-32", frames=2, seed=0, weights=weights))
        assert np.array_equal(loaded.embed_clip(frames), expected)   # the file's weights, not seed 0's
    pickled = tmp_path / "clip.pt"
    pickled.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(UserError, match=r"clip.weights: .*clip.pt: a torch.save zip \(pickle\) file") as caught:
        ClipEmbedder(EmbedSettings(model="ViT-S-32", weights=str(pickled)))
    assert "save_file" in caught.value.one_line() and "\n" not in caught.value.one_line()
    with pytest.raises(UserError, match="does not fit open_clip model 'ViT-B-32'"):
        ClipEmbedder(EmbedSettings(model="ViT-B-32", weights=str(path)))


def test_curate_cli_refuses_a_pickle_clip_checkpoint_in_one_line(tmp_path: Path) -> None:
    pickled = tmp_path / "clip.pt"
    torch.save({"state_dict": {"a": torch.ones(1)}}, pickled)
    config = tmp_path / "curate.yaml"
    config.write_text(f"models:\n  clip_weights: {pickled}\n")
    video = tmp_path / "in.mp4"
    video.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "curate", str(video), "--out", str(tmp_path / "o"),
                             "--config", str(config), "--quiet"], capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1500:]
    assert "models.clip_weights" in lines[0] and "pickle" in lines[0] and "safetensors" in lines[0]
    assert not (tmp_path / "o").exists()


def test_generate_refuses_a_pickle_clip_checkpoint_before_any_work(tmp_path: Path) -> None:
    from pipeline.generate import load_generate_config, run_generate

    pickled = tmp_path / "open_clip_pytorch_model.bin"
    torch.save({"a": torch.ones(1)}, pickled)
    examples = Path(__file__).resolve().parents[1] / "manifests" / "examples"
    for weights in (str(pickled), f"local-dir:{tmp_path}"):
        config = load_generate_config(None, {"out": str(tmp_path / "o"), "clip": {"weights": weights}})
        with pytest.raises(UserError, match=r"generate config clip.weights: .*pickle"):
            run_generate([examples / "quickstart.yaml"], config)
        assert not (tmp_path / "o").exists()
