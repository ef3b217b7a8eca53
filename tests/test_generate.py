"""`worldloom generate` end to end: real procedural render servers, real Ray, real H.264,
real MLflow. Small clips (160x90, 16 frames) keep it inside the test budget."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main as cli_main
from pipeline.generate import load_generate_config, run_generate
from pipeline.shards import DatasetLayout, iter_samples, read_dataset_json, read_index, verify_dataset

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "manifests" / "examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generate")
    config = {"clip": {"model": "ViT-S-32", "frames": 2}, "shard_max_bytes": 120_000, "workers": 1,
              "mlflow": {"enabled": False}, "progress": False, "retries": 2}
    (root / "gen.yaml").write_text(yaml.safe_dump(config))
    many = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    many["name"] = "quickstart_many"
    for scene in many["scenes"]:
        scene["clips"] = 3
    (root / "many.yaml").write_text(yaml.safe_dump(many, sort_keys=False))
    return root


def _config(workdir: Path, out: Path, **overrides):
    return load_generate_config(workdir / "gen.yaml", {"out": str(out), **overrides})


def _mp4_digests(out: Path) -> dict[str, str]:
    return {s["__key__"]: hashlib.sha256(s["mp4"]).hexdigest() for s in iter_samples(out, decode=False)}


def _shard_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DatasetLayout(out).complete_shards()}


@pytest.fixture(scope="module")
def reference(workdir: Path, ray_session) -> Path:
    """An undisturbed run of 6 clips: what every other run must reproduce."""
    out = workdir / "reference"
    result = run_generate([workdir / "many.yaml"], _config(workdir, out))
    assert result.status == "complete" and result.counts.failed == 0
    return out


@pytest.mark.timeout(240)
def test_cli_quickstart_readable_by_webdataset_and_ray_data(workdir: Path, ray_session, tmp_path: Path) -> None:
    import webdataset as wds

    out = tmp_path / "quick"
    cfg = tmp_path / "quick.yaml"
    cfg.write_text(yaml.safe_dump({"clip": {"model": "ViT-S-32", "frames": 2}, "workers": 1}))
    cli_main(["generate", str(EXAMPLES / "quickstart.yaml"), "--out", str(out), "--config", str(cfg)])

    report = verify_dataset(out)
    assert report.ok, report.problems
    index = read_index(out / "index.parquet")
    assert len(index) == 4 and set(index["status"]) == {"kept"}
    assert all(k.startswith(index["manifest_sha256"][0][:12]) and "." not in k for k in index["key"])
    dataset = read_dataset_json(out / "dataset.json")
    assert dataset["status"] == "complete" and dataset["counts"]["kept"] == 4
    assert dataset["manifests"][0]["name"] == "quickstart" and dataset["code"]["package"] == "worldloom"
    assert dataset["last_run"]["stage_cpu_s"]["render"] > 0 and dataset["last_run"]["efficiency"] > 0

    urls = [str(p) for p in DatasetLayout(out).complete_shards()]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert sorted(s["__key__"] for s in samples) == sorted(index["key"])
    sample = samples[0]
    assert sample["poses.npy"].shape == (16, 4, 4) and sample["actions.npy"].shape == (16, 8)
    assert sample["intrinsics.npy"].shape == (3, 3) and sample["clip.npy"].shape == (384,)
    assert sample["json"]["source"] == "synthetic" and sample["json"]["frames"] == 16
    assert sample["json"]["caption"] and set(sample["json"]["scores"]) >= {"black_fraction", "camera_speed_mps"}

    import ray

    rows = ray.data.read_webdataset(urls).take_all()
    assert sorted(r["__key__"] for r in rows) == sorted(index["key"])

    # the MLflow data run landed in the project's one store (pipeline/mlflow_store.py), tagged with the dataset
    import mlflow

    from pipeline.mlflow_store import store_uri

    client = mlflow.MlflowClient(tracking_uri=store_uri())
    runs = client.search_runs([client.get_experiment_by_name("worldloom-generate").experiment_id],
                              filter_string=f"tags.`worldloom.out` = '{out.resolve()}'")
    assert runs and runs[0].data.metrics["clips_kept"] == 4
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"index.parquet", "dataset.json", "contact_sheet.png"} <= artifacts

    # inspect prints statistics and writes a contact sheet and GIFs
    cli_main(["inspect", str(out), "--gifs", "2"])
    assert (out / "inspect" / "contact_sheet.png").stat().st_size > 0
    assert len(list((out / "inspect" / "previews").glob("*.gif"))) == 2

    # re-running the same command skips every clip and changes nothing
    before = _shard_digests(out)
    cli_main(["generate", str(EXAMPLES / "quickstart.yaml"), "--out", str(out), "--config", str(cfg),
              "--no-progress", "--no-mlflow"])
    assert _shard_digests(out) == before and len(read_index(out / "index.parquet")) == 4


@pytest.mark.timeout(240)
def test_killed_render_server_is_restarted_and_no_clip_is_lost(workdir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    killed: list[int] = []
    servers: list[int] = []

    def on_event(kind: str, data: dict) -> None:
        if kind == "server" and data["server_pid"]:
            servers.append(data["server_pid"])
        if kind == "rendered" and not killed:
            os.kill(servers[0], signal.SIGKILL)   # like an engine crash, mid-run
            killed.append(servers[0])

    # two servers: the killed one is restarted while the other keeps rendering
    result = run_generate([workdir / "many.yaml"], _config(workdir, out, workers=2), on_event=on_event)
    assert killed and result.server_restarts >= 1
    assert result.counts.failed == 0 and result.counts.retried >= 1
    index = read_index(out / "index.parquet")
    assert index["attempts"].max() >= 2 and set(index["status"]) <= {"kept", "rejected"}
    assert verify_dataset(out).ok
    # the retried clips are the same clips: keys, mp4 bytes and whole shards equal an undisturbed run
    assert _mp4_digests(out) == _mp4_digests(reference)
    assert _shard_digests(out) == _shard_digests(reference)


@pytest.mark.timeout(300)
def test_sigint_then_rerun_equals_uninterrupted_run(workdir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "pipeline.cli", "generate", str(workdir / "many.yaml"), "--out", str(out),
               "--config", str(workdir / "gen.yaml"), "--no-progress"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    assert process.poll() is None, process.stdout.read().decode()[-2000:]
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=90)[0].decode()
    assert process.returncode == 130, output[-2000:]
    assert "re-run the same command to resume" in output
    assert not (out / "index.parquet").exists(), "an interrupted run must not look complete"
    assert read_dataset_json(out / "dataset.json")["status"] == "incomplete"
    assert all(path.suffix == ".tar" for path in (out / "shards").glob("*.tar")), "only committed shards are .tar"

    result = run_generate([workdir / "many.yaml"], _config(workdir, out))
    assert result.counts.skipped >= 2 and result.counts.rendered + result.counts.skipped == 6
    assert verify_dataset(out).ok
    assert DatasetLayout(out).temporary_files() == [] and not journal.exists()
    assert list(read_index(out / "index.parquet")["key"]) == list(read_index(reference / "index.parquet")["key"])
    assert _mp4_digests(out) == _mp4_digests(reference)
    assert _shard_digests(out) == _shard_digests(reference)


@pytest.mark.timeout(240)
def test_filters_reject_static_empty_world_and_black_night(workdir: Path, ray_session, tmp_path: Path) -> None:
    out = tmp_path / "filters"
    result = run_generate([EXAMPLES / "static_empty.yaml", EXAMPLES / "night_black.yaml"],
                          _config(workdir, out, clip={"enabled": False}))
    index = read_index(out / "index.parquet").set_index("scene")
    assert result.counts.kept == 0 and result.counts.rejected == 4
    assert all("static" in reason.split(",") for reason in index.loc["still", "reason"])
    assert all("black" in reason.split(",") for reason in index.loc["dark", "reason"])
    assert (index.loc["dark", "black_fraction"] == 1.0).all()
    assert (index.loc["still", "camera_speed_mps"] == 0.0).all()
    # rejected clips keep their scores but are in no shard
    assert set(index["shard"]) == {""} and not list(iter_samples(out))
    assert verify_dataset(out).ok


@pytest.mark.timeout(180)
def test_clip_failing_beyond_retries_is_recorded_and_reported(workdir: Path, ray_session, tmp_path: Path,
                                                               capsys, monkeypatch) -> None:
    import socket

    import pipeline.generate.cli as generate_cli

    # A server that passed the early --endpoint check and died afterwards: skip the check (it has
    # its own test) so the run itself meets the dead port and must record every failed clip.
    monkeypatch.setattr(generate_cli, "check_endpoints", lambda endpoints, timeout_s=5.0: None)

    with socket.socket() as probe:  # a port with nobody listening: every attempt fails
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    cfg = tmp_path / "dead.yaml"
    cfg.write_text(yaml.safe_dump({"retries": 1, "clip": {"enabled": False}, "mlflow": {"enabled": False},
                                   "client_connect_timeout_s": 1.0, "client_max_retries": 0}))
    out = tmp_path / "dead"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["generate", str(EXAMPLES / "static_empty.yaml"), "--out", str(out), "--endpoint", dead,
                  "--config", str(cfg), "--no-progress"])
    assert exit_info.value.code == 1
    assert "2 clip(s) failed after 1 retries" in capsys.readouterr().err
    index = read_index(out / "index.parquet")
    assert set(index["status"]) == {"failed"} and (index["attempts"] == 2).all()
    assert all(dead in error for error in index["error"]), list(index["error"])


def test_bad_config_is_one_line_naming_file_and_field(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("shard_max_bytes: -3\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["generate", str(EXAMPLES / "quickstart.yaml"), "--out", str(tmp_path / "x"), "--config", str(cfg)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(cfg) in err and "shard_max_bytes" in err
