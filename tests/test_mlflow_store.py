"""One MLflow store per project, artifacts beside it, runs linked (read back with MlflowClient).

The end-to-end version (a real generate, VAE and world run in one store) is part of
tests/test_readme_tour.py; these tests pin each rule on its own in a second or two.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.generate.tracking import dataset_digest, find_data_run, log_data_run, tracking_uri
from pipeline.mlflow_store import artifact_location, store_uri, ui_command
from training import tracking


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A project folder as the working directory, its runs folder the default store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WORLDLOOM_RUNS", raising=False)
    return tmp_path


def _dataset(folder: Path, **document) -> Path:
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"status": "complete", **document}, sort_keys=True))
    (folder / "index.parquet").write_bytes(b"not really parquet")
    return folder


def test_default_store_is_runs_mlflow_db_with_artifacts_beside_it(project: Path) -> None:
    uri = store_uri()
    assert uri == f"sqlite:///{project / 'runs' / 'mlflow.db'}"
    assert tracking_uri(project / "data" / "x", None) == uri == tracking.resolve_tracking_uri(None)
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"  # the config wins
    assert artifact_location(uri, "worldloom tiny") == (project / "runs" / "mlartifacts" / "worldloom_tiny").as_uri()
    assert ui_command(uri) == f"mlflow ui --backend-store-uri sqlite:///{project / 'runs' / 'mlflow.db'}"

    dataset = _dataset(project / "data" / "quick")
    run_id = log_data_run(out=dataset, uri=uri, experiment="worldloom-generate", params={"a": {"b": 1}},
                          metrics={"clips_kept": 4}, artifacts=[dataset / "dataset.json"], run_name="generate quick")
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params["a.b"] == "1" and run.data.metrics["clips_kept"] == 4
    assert run.data.tags["worldloom.dataset_json_sha256"] == dataset_digest(dataset / "dataset.json")
    # the artifact sits beside the database, and nothing was written to ./mlruns of the working directory
    assert (project / "runs" / "mlartifacts" / "worldloom-generate").is_dir()
    assert list((project / "runs" / "mlartifacts").rglob("dataset.json"))
    assert not (project / "mlruns").exists()
    assert find_data_run(client, dataset) == run_id
    assert find_data_run(client, project / "data" / "other") is None


def test_environment_names_the_store(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORLDLOOM_RUNS", str(project / "elsewhere"))
    assert store_uri() == f"sqlite:///{project / 'elsewhere' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/some.db")
    assert store_uri() == tracking_uri(None, None) == "sqlite:////tmp/some.db"


def test_train_run_links_dataset_generate_run_and_vae_run(project: Path) -> None:
    """Rank 0's tracker on a real store: dataset inputs with the dataset.json digest, the generate
    run found through a mix's parents, and the VAE's run read from its checkpoint."""
    uri = store_uri()
    client = MlflowClient(uri)
    synthetic = _dataset(project / "data" / "quickstart")
    generate_run = log_data_run(out=synthetic, uri=uri, experiment="worldloom-generate", params={}, metrics={},
                                artifacts=[], run_name="generate quickstart")
    mix = _dataset(project / "data" / "mix", parents=[{"name": "synthetic", "path": str(synthetic), "weight": 1.0},
                                                      {"name": "real", "path": str(project / "data" / "gone")}])
    vae_run = tracking.open_run(uri, "worldloom-tiny", "tiny-vae", None, tags={"worldloom.stage": "vae"})
    checkpoint = project / "runs" / "train" / "tiny-vae" / "checkpoint_00000010"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text(json.dumps({"mlflow_run_id": vae_run, "step": 10}))

    world_run = tracking.open_run(uri, "worldloom-tiny", "tiny-world", None, tags={"worldloom.stage": "world"})
    tracker = tracking.Rank0Tracker(0, uri, world_run, system_metrics=False)
    try:
        tracker.log_config({"stage": "world"}, {"stage": "world", "vae_checkpoint": str(checkpoint)})
        tracker.log_provenance({"sources": [{"path": str(mix), "weight": 1.0, "shards": [], "index_sha256": "0" * 64}]})
    finally:
        tracker.close()
    tracking.close_run(uri, world_run, "FINISHED")

    run = client.get_run(world_run)
    assert run.info.artifact_uri.startswith((project / "runs" / "mlartifacts").as_uri())
    assert run.data.tags["worldloom.vae_run_id"] == vae_run
    assert run.data.tags["worldloom.generate_run_id"] == generate_run
    assert "worldloom.dataset_input_error" not in run.data.tags
    inputs = run.inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["mix"]
    assert inputs[0].dataset.digest == dataset_digest(mix / "dataset.json")[:36]
    assert {t.key: t.value for t in inputs[0].tags}["dataset_json_sha256"] == dataset_digest(mix / "dataset.json")
    # all four runs are in the one store that `mlflow ui` opens
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert {r.info.run_id for r in client.search_runs(experiments)} == {generate_run, vae_run, world_run}
