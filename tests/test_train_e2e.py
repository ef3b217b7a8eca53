"""End to end on CPU with real parts: `worldloom generate` output -> Ray Train (2 workers, DDP, gloo)
-> checkpoints -> MLflow (SQLite) -> --resume -> world stage -> sample; then a two-node Ray cluster
logging to a real `mlflow server`, with one worker SIGKILLed mid-run.

One module so the generated dataset and the trained VAE are shared: a Ray Train worker group
takes 10-20 s to start on 2 busy cores, so every fit counts. Sizes are tiny: 5-frame 32x32
windows, a dozen steps.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from contract.errors import UserError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SMALL = {"frames": 5, "fps": 8, "resolution": [32, 32], "shuffle_buffer": 4}


def vae_config(storage: Path, name: str, steps: int, every: int, **extra) -> dict:
    return {"stage": "vae", "model": "tiny", "steps": steps, "batch_size": 2, "seed": 0, "ema_decay": 0.9,
            "name": name, "storage_path": str(storage), "data": dict(SMALL),
            "optim": {"lr": 3e-3, "warmup_steps": 2, "weight_decay": 0.0},
            "checkpoint": {"every": every, "keep": 2},
            "mlflow": {"experiment": "test-train", "log_every": 1, "log_system_metrics": True},
            "scaling": {"num_workers": 2, "max_failures": 2}, **extra}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, ray_session) -> Path:
    """The quickstart manifest rendered by the real generate pipeline (4 clips, 16 frames, 160x90, 8 fps)."""
    from pipeline.generate.config import GenerateConfig
    from pipeline.generate.run import run_generate

    out = tmp_path_factory.mktemp("quickstart")
    config = GenerateConfig.model_validate({"out": str(out), "workers": 1, "progress": False,
                                            "mlflow": {"enabled": False}, "clip": {"enabled": False}})
    run_generate([REPO / "manifests" / "examples" / "quickstart.yaml"], config)
    assert list((out / "shards").glob("shard-*.tar"))
    return out


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def vae_run(dataset: Path, storage: Path, mlflow_server):
    from training import api
    from training.config import parse_config

    return api.train(parse_config(vae_config(storage, "vae", steps=12, every=6)), [str(dataset)])


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "workers" / "events.jsonl").read_text().splitlines()]


@pytest.mark.timeout(300)
def test_vae_trains_with_two_workers_and_logs_to_mlflow(vae_run, storage: Path, dataset: Path) -> None:
    assert vae_run.step == 12
    run_folder = storage / "vae"
    assert sorted(p.name for p in run_folder.glob("checkpoint_*") if p.is_dir()) == ["checkpoint_00000006", "checkpoint_00000012"]
    checkpoint = Path(vae_run.checkpoint)
    for name in ("state.json", "rng_rank0.json", "rng_rank1.json"):  # sharded, pickle-free (training/checkpoint.py)
        assert (checkpoint / name).is_file(), name
    assert len(list((checkpoint / "shards").glob("*.safetensors"))) == 2  # one shard per rank
    assert not [p for p in checkpoint.rglob("*.pt")]
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == 12 and state["data_position"]["batches"] == 12 and state["world_size"] == 2
    assert {e["rank"] for e in events(vae_run.run_dir) if e["event"] == "start"} == {0, 1}

    mlflow = client(vae_run.tracking_uri)
    from pipeline.mlflow_store import store_uri

    assert vae_run.tracking_uri == store_uri()  # default: the project's one store (pipeline/mlflow_store.py)
    run = mlflow.get_run(vae_run.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["stage"] == "vae" and run.data.params["scaling.num_workers"] == "2"
    assert run.data.params["data.sources.0.path"] == str(dataset)
    for metric in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "data_wait_fraction"):
        assert metric in run.data.metrics, metric
    losses = [m.value for m in sorted(mlflow.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses  # it learns
    artifacts = {a.path for folder in ("samples", "checkpoint", "data", "config")
                 for a in mlflow.list_artifacts(run.info.run_id, folder)}
    assert "samples/rollout_step00000012.mp4" in artifacts and "samples/rollout_step00000012.gif" in artifacts
    assert "data/provenance.json" in artifacts and not any(a.startswith("checkpoint/") for a in artifacts)
    model = mlflow.get_logged_model(run.data.tags["worldloom.export_model_id"])  # the export, not the optimizer
    assert model.source_run_id == run.info.run_id and str(model.status) in ("READY", "LoggedModelStatus.READY")
    assert {"config.json", "model.safetensors"} <= {a.path for a in mlflow.list_logged_model_artifacts(model.model_id)}
    provenance = mlflow.download_artifacts(run.info.run_id, "data/provenance.json")
    source = json.loads(Path(provenance).read_text())["sources"][0]
    assert source["shards"] and len(source["index_sha256"]) == 64 and source["index"].endswith("index.parquet")
    assert run.inputs.dataset_inputs  # MLflow dataset lineage


@pytest.mark.timeout(300)
def test_resume_continues_from_the_saved_step(vae_run, storage: Path, dataset: Path) -> None:
    from training import api
    from training.config import parse_config

    with pytest.raises(UserError, match="--resume"):  # never resume by accident
        api.train(parse_config(vae_config(storage, "vae", steps=16, every=6)), [str(dataset)])
    resumed = api.train(parse_config(vae_config(storage, "vae", steps=16, every=6)), [str(dataset)], resume=True)
    assert resumed.step == 16 and resumed.mlflow_run_id == vae_run.mlflow_run_id
    starts = [e for e in events(resumed.run_dir) if e["event"] == "start"]
    assert starts[-1]["restored"] and starts[-1]["start_step"] == 12
    state = json.loads((Path(resumed.checkpoint) / "state.json").read_text())
    assert state["data_position"]["batches"] == 16
    history = client(resumed.tracking_uri).get_metric_history(resumed.mlflow_run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 17))  # one MLflow run, steps continue


@pytest.mark.timeout(300)
def test_world_stage_then_sample_an_mp4(vae_run, storage: Path, dataset: Path, tmp_path: Path) -> None:
    import decord

    from training import api
    from training.config import parse_config

    config = vae_config(storage, "world", steps=4, every=4, vae_checkpoint=str(vae_run.checkpoint))
    config.update(stage="world", mlflow={"experiment": "test-train", "sample_frames": 5, "sample_steps": 2,
                                        "log_system_metrics": False})
    world = api.train(parse_config(config), [str(dataset)])
    assert world.step == 4 and json.loads((Path(world.checkpoint) / "state.json").read_text())["has_vae"]
    artifacts = [a.path for a in client(world.tracking_uri).list_artifacts(world.mlflow_run_id, "samples")]
    assert "samples/rollout_step00000004.mp4" in artifacts
    from training.checkpoint import load_for_inference

    weights = load_for_inference(world.checkpoint).weights  # measured latent statistics, saved with the weights
    assert torch.isfinite(weights["latent_std"]).all() and (weights["latent_std"] > 0).all()
    assert not torch.allclose(weights["latent_std"], torch.ones_like(weights["latent_std"]))
    assert not torch.allclose(weights["latent_mean"], torch.zeros_like(weights["latent_mean"]))

    out = api.sample(world.checkpoint, "first-person walk through city streets", seconds=9 / 8,
                     actions="w-4,lw-5", out=tmp_path / "rollout.mp4", steps=2)
    reader = decord.VideoReader(str(out))
    assert len(reader) == 9 and reader[0].shape == (32, 32, 3)  # 1.125 s at 8 fps
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.timeout(120)
def test_encode_writes_latent_shards_the_loader_reads(vae_run, dataset: Path, tmp_path: Path) -> None:
    from training import api
    from training.data import WindowSpec, make_loader

    result = api.encode_latents(vae_run.checkpoint, [str(dataset)], tmp_path / "latents", windows_per_clip=2)
    # 16-frame clips, 5-frame windows at the source fps: windows start at 0, 5 -> 2 per clip
    assert (result.clips, result.windows, result.skipped_short) == (4, 8, 0)
    assert json.loads((tmp_path / "latents" / "dataset.json").read_text())["counts"]["windows"] == 8
    handle = make_loader([(str(tmp_path / "latents"), 1.0)], WindowSpec(5, 8, 32, 32), batch_size=2, seed=0, rank=0,
                         world_size=1, shuffle_buffer=2, loader_workers=0, latents=True)
    batch = handle.next_batch()
    assert batch["latents"].shape == (2, 8, 2, 4, 4)  # tiny VAE: 8 channels, 1 + (5-1)/4 frames, 32/8 cells
    assert batch["actions"].shape == (2, 5, 8) and batch["poses"].shape == (2, 5, 4, 4)
    assert all(key.rsplit("_w", 1)[1] in ("00000", "00005") for key in batch["key"])
    with pytest.raises(UserError, match="already holds a dataset"):
        api.encode_latents(vae_run.checkpoint, [str(dataset)], tmp_path / "latents")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on loopback (SQLite backend, local artifact store).

    Started when the module starts (the VAE fixture asks for it) so its start-up overlaps the
    first training run; `wait()` blocks until /health answers.
    """
    import urllib.request

    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination", str(folder / "artifacts"),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"

    def wait() -> str:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                return uri
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)

    yield wait
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    log.close()


TWO_NODE_SCRIPT = r"""
import json, sys
import ray
from ray.cluster_utils import Cluster

dataset, config = sys.argv[1], json.loads(sys.argv[2])
# Two raylets on loopback: the head and a second node, one CPU each, so the two training workers
# (one CPU each) must be placed on different nodes.
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
try:
    from training import api
    from training.config import parse_config
    result = api.train(parse_config(config), [dataset])
    print("RESULT " + json.dumps({"step": result.step, "checkpoint": str(result.checkpoint),
                                  "run_id": result.mlflow_run_id, "tracking_uri": result.tracking_uri,
                                  "nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]]}), flush=True)
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.timeout(400)
def test_two_node_cluster_survives_a_killed_worker_and_logs_to_mlflow_server(
        dataset: Path, tmp_path: Path, mlflow_server) -> None:
    """Three acceptance points in one run (each Ray start costs tens of seconds here):

    - a two-node Ray cluster on this machine (ray.cluster_utils.Cluster, in its own process since
      it cannot share the session's Ray) trains with one worker on each node;
    - one training worker is SIGKILLed mid-run: Ray Train restarts the group, the loop restores
      the last checkpoint and the run finishes with the right step count;
    - everything is logged to a real `mlflow server` on loopback.
    """
    steps, every = 24, 5
    uri = mlflow_server()
    config = vae_config(tmp_path, "two-node", steps=steps, every=every)
    config["mlflow"].update(tracking_uri=uri, log_system_metrics=False)
    script = tmp_path / "two_node.py"
    script.write_text(TWO_NODE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    output = open(tmp_path / "driver.log", "w+")
    driver = subprocess.Popen([sys.executable, str(script), str(dataset), json.dumps(config)], stdout=output,
                              stderr=subprocess.STDOUT, env=env, cwd=REPO, text=True)
    heartbeat = tmp_path / "two-node" / "workers" / "rank1.json"
    snapshot = tmp_path / "two-node" / "checkpoint_manager_snapshot.json"
    killed = registered = None
    deadline = time.time() + 300
    while killed is None and driver.poll() is None and time.time() < deadline:
        try:
            beat = json.loads(heartbeat.read_text())
            # a checkpoint counts once Ray Train's controller registered it (it then writes this
            # snapshot); a worker killed between its report and the registration loses that one
            latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]["metrics"]["step"]
        except (OSError, ValueError, KeyError, TypeError):
            beat, latest = {"step": -1}, 0
        if latest >= every and beat["step"] >= latest + 2:  # mid-run, past a registered checkpoint
            os.kill(beat["pid"], signal.SIGKILL)
            killed, registered = beat, latest
        time.sleep(0.05)
    try:
        driver.wait(timeout=max(10, deadline - time.time()))
    finally:
        if driver.poll() is None:
            driver.kill()
    output.seek(0)
    log = output.read()
    lines = [line for line in log.splitlines() if line.startswith("RESULT ")]
    assert killed is not None, f"worker 1 never got past the first checkpoint:\n{log[-3000:]}"
    assert driver.returncode == 0 and lines, log[-3000:]
    outcome = json.loads(lines[0].removeprefix("RESULT "))

    # two nodes, one worker on each
    assert len(outcome["nodes"]) == 2
    starts = [e for e in events(tmp_path / "two-node") if e["event"] == "start"]
    beats = [json.loads((tmp_path / "two-node" / "workers" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {b["node_id"] for b in beats} == set(outcome["nodes"])

    # the killed worker was replaced and the group restored the last checkpoint before the kill
    assert outcome["step"] == steps and Path(outcome["checkpoint"], "state.json").is_file()
    rank1 = [e for e in starts if e["rank"] == 1]
    assert len(rank1) == 2 and rank1[0]["pid"] == killed["pid"] != rank1[1]["pid"]
    assert rank1[1]["restored"] and rank1[1]["start_step"] % every == 0
    assert registered <= rank1[1]["start_step"] <= killed["step"]

    # the MLflow server holds one finished run with every step's loss, params and the rollout video
    mlflow = client(uri)
    assert outcome["tracking_uri"] == uri
    run = mlflow.get_run(outcome["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["stage"] == "vae"
    history = mlflow.get_metric_history(run.info.run_id, "loss")
    assert {m.step for m in history} == set(range(1, steps + 1))
    videos = {a.path for a in mlflow.list_artifacts(run.info.run_id, "samples")}
    assert f"samples/rollout_step{steps:08d}.mp4" in videos
