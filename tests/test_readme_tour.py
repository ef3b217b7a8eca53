"""The README's tour, run verbatim as a new user would: the README cannot drift from the code.

The block after the `<!-- tour: ... -->` marker is written to a script and run with `bash -e`
in an empty folder that holds what a user's folder holds: the repository's `.venv` and
`manifests/` (linked), and `~/videos` (HOME is the test's own) with two files of the real
footage in ../shared/realfootage, or, when that folder is absent, two generated stand-ins (a
textured plane panning, named as stand-ins) so the curate step still has inputs.

Afterwards the one MLflow store of that folder is read back: the generate run, the VAE run and
the world run are all there, finished and linked.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "realfootage"
REAL_INPUTS = ("issue-134-rotate.mp4", "issue-236-split-copy.mkv")  # long portrait shots + fast motion
MARKER = "<!-- tour:"


def tour_block(readme: str) -> str:
    """The first ```bash block after the tour marker."""
    after = readme[readme.index(MARKER):]
    match = re.search(r"```bash\n(.*?)```", after, flags=re.S)
    assert match, "README: no ```bash block after the tour marker"
    return match.group(1)


def test_tour_block_is_found_and_has_every_step() -> None:
    block = tour_block((REPO / "README.md").read_text())
    for command in ("manifest validate", "generate", "inspect", "curate", "select", "mix", "train tiny_vae",
                    "train tiny_world", "sample", "model info", "config show"):
        assert f"worldloom {command}" in block, command
    assert "&\n" not in block  # nothing is left running in the background


def _stand_in(path: Path, seed: int, seconds: float = 3.0, fps: int = 24) -> None:
    """Stand-in footage (not real): a blocky texture panning one pixel per frame, deterministic by seed."""
    from pipeline.encode import encode_mp4

    rng = np.random.default_rng(seed)
    height, width = 256, 456  # curate's output size for 16:9, so no resize softens it below the tour's threshold
    steps = int(seconds * fps)
    texture = np.kron(rng.random((height // 4 + 1, (width + steps) // 4 + 1, 3)), np.ones((4, 4, 1)))
    frames = [(texture[:height, i:i + width] * 200 + 30).astype(np.uint8) for i in range(steps)]
    path.write_bytes(encode_mp4(np.stack(frames), fps))


def _user_folder(root: Path) -> dict[str, str]:
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "manifests").symlink_to(REPO / "manifests")
    videos = root / "home" / "videos"
    videos.mkdir(parents=True)
    if all((REAL / name).is_file() for name in REAL_INPUTS):
        for name in REAL_INPUTS:
            (videos / name).symlink_to(REAL / name)
    else:
        for seed in range(2):
            _stand_in(videos / f"stand_in_{seed}.mp4", seed)
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLDLOOM_RUNS", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(HOME=str(root / "home"), COLUMNS="80", RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_readme_tour_runs_verbatim(tmp_path: Path) -> None:
    block = tour_block((REPO / "README.md").read_text())
    script = tmp_path / "tour.sh"
    script.write_text("set -euo pipefail\n" + block)
    env = _user_folder(tmp_path)
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1400)
    tail = (result.stdout[-3000:] + "\n--- stderr ---\n" + result.stderr[-5000:])
    assert result.returncode == 0, tail

    # what each step promised is there
    assert (tmp_path / "forest.resolved.json").stat().st_size > 0
    assert (tmp_path / "data" / "quickstart" / "inspect" / "contact_sheet.png").is_file()
    from pipeline.shards.index import read_index

    selected = read_index(tmp_path / "data" / "real_sharp" / "index.parquet")
    everything = read_index(tmp_path / "data" / "real" / "index.parquet")
    assert 0 < len(selected) <= len(everything[everything["status"] == "kept"])  # the threshold selects from data
    from pipeline.encode import decode_mp4

    assert decode_mp4((tmp_path / "rollout.mp4").read_bytes()).shape[0] == 17  # 2 s at 8 fps, 1 + 4k frames
    assert "stage: vae" in (tmp_path / "my_vae.yaml").read_text()
    assert not (tmp_path / "mlruns").exists()  # artifacts live beside the store, not in the working directory

    # one MLflow store with every run of the tour, linked
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_kind: dict[str, list] = {}
    for run in runs:
        kind = run.data.tags.get("worldloom.kind") or run.data.tags.get("worldloom.stage")
        by_kind.setdefault(kind, []).append(run)
    assert sorted(by_kind) == ["data", "vae", "world"], {k: len(v) for k, v in by_kind.items()}
    data_run, vae_run, world_run = (by_kind[k][0] for k in ("data", "vae", "world"))
    assert all(r.info.status == "FINISHED" for r in runs)
    assert vae_run.data.tags["worldloom.generate_run_id"] == data_run.info.run_id  # found through the mix's parents
    assert world_run.data.tags["worldloom.vae_run_id"] == vae_run.info.run_id
    assert [i.dataset.name for i in vae_run.inputs.dataset_inputs] == ["mix"]
    for run in runs:
        assert run.info.artifact_uri.startswith((tmp_path / "runs" / "mlartifacts").as_uri()), run.info.artifact_uri

    # re-running generate resumes with nothing to do: no empty MLflow run, the last run's statistics kept
    import json

    before = json.loads((tmp_path / "data" / "quickstart" / "dataset.json").read_text())["last_run"]
    again = subprocess.run(["bash", "-c", "source .venv/bin/activate && worldloom generate "
                            "manifests/examples/quickstart.yaml --out data/quickstart --no-progress"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((tmp_path / "data" / "quickstart" / "dataset.json").read_text())["last_run"]
    assert after == before and after["rendered"] == 4
    data_runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                   filter_string="tags.`worldloom.kind` = 'data'")
    assert len(data_runs) == 1

