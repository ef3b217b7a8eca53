"""Pieces of generate that need no Ray: CLIP embedder, config, task expansion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.errors import UserError

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"


def test_random_clip_embedder_is_deterministic_and_normalised() -> None:
    from pipeline.embed import ClipEmbedder, EmbedSettings

    frames = np.random.default_rng(0).integers(0, 255, size=(5, 36, 64, 3), dtype=np.uint8)
    first = ClipEmbedder(EmbedSettings(model="ViT-S-32", frames=3))
    vector = first.embed_clip(frames)
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    again = ClipEmbedder(EmbedSettings(model="ViT-S-32", frames=3)).embed_clip(frames)
    assert np.array_equal(vector, again)
    assert first.embed_text(["a walk in a forest", "a city street"]).shape == (2, 384)
    assert -1.0 <= first.text_similarity(vector, "a walk") <= 1.0
    assert first.describe()["weights"] == "random-init(seed=0)"


def test_clip_weights_path_must_exist(tmp_path: Path) -> None:
    from pipeline.embed import ClipEmbedder, EmbedSettings

    with pytest.raises(UserError, match="clip.weights"):
        ClipEmbedder(EmbedSettings(model="ViT-S-32", weights=str(tmp_path / "missing.bin")))


def test_tasks_are_in_key_order_and_duplicates_are_refused() -> None:
    from pipeline.generate.tasks import expand_manifests

    tasks, infos = expand_manifests([EXAMPLES / "static_empty.yaml", EXAMPLES / "quickstart.yaml"])
    keys = [task.key for task in tasks]
    assert keys == sorted(keys) and [task.order for task in tasks] == list(range(len(tasks)))
    assert all(key.startswith(info.sha256[:12]) for info in infos for key in info.resolved)
    with pytest.raises(UserError, match="also produced by"):
        expand_manifests([EXAMPLES / "quickstart.yaml", EXAMPLES / "quickstart.yaml"])


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    from pipeline.generate import load_generate_config

    cfg = tmp_path / "gen.yaml"
    cfg.write_text("workers: 3\nthresholds: {max_black_fraction: 0.9}\n")
    config = load_generate_config(cfg, {"workers": 1, "out": "x", "endpoints": None})
    assert config.workers == 1 and config.thresholds.to_thresholds().max_black_fraction == 0.9
    with pytest.raises(UserError, match="endpoints"):
        load_generate_config(None, {"endpoints": ["nohostport"]})
    cfg.write_text("thresholds: {max_blak_fraction: 0.9}\n")
    with pytest.raises(UserError, match="thresholds.max_blak_fraction"):
        load_generate_config(cfg)


def test_manifest_endpoints_are_used_and_an_unreal_manifest_without_one_is_refused(tmp_path):
    from contract.errors import UserError
    from pipeline.generate.config import GenerateConfig
    from pipeline.generate.tasks import ManifestInfo, render_endpoints

    def info(backend: str, endpoints: tuple[str, ...] = ()) -> ManifestInfo:
        return ManifestInfo(path=f"{backend}.yaml", name=backend, sha256="0" * 64, resolved_sha256="0" * 64,
                            resolved={}, backend=backend, endpoints=endpoints)

    assert render_endpoints([info("procedural")], []) == []            # start procedural servers
    assert render_endpoints([info("unreal", ("10.0.0.5:50051",))], []) == ["10.0.0.5:50051"]
    assert render_endpoints([info("unreal", ("a:1",))], ["b:2"]) == ["b:2"]  # the command line wins
    with pytest.raises(UserError, match="unreal.yaml: renderer.backend is unreal"):
        render_endpoints([info("unreal")], [])
    secret = GenerateConfig(auth_token="s3cret")
    assert "s3cret" not in secret.model_dump_json() and "s3cret" not in repr(secret)
