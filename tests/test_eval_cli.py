"""`worldloom eval` end to end on a tiny world checkpoint and a tiny held-out set, and its one-line errors.

The checkpoint is an untrained tiny model written as a real export (safetensors + config.json):
the eval's machinery is under test here, not the model (benchmarks/bench_action_following.py
measures a trained one). The held-out set is rendered by the real procedural backend, encoded to
H.264 and written through the real shard writer, with the resolved clip in each json member so
the eval can render continuations. MLflow is a real SQLite store holding a "training run" the eval
run must attach to.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.eval import groundtruth as gt

HELD_OUT = """
version: 1
name: evalheld
seed: 11
renderer: {backend: procedural, endpoints: []}
output: {width: 96, height: 64, fps: 8, frames: 12, crf: 18, gop: 8}
passes: [rgb]
scenes:
  - name: street
    clips: 2
    world: {generator: city, params: {blocks: 2, block_size_m: 30, building_height_m: [6, 20], road_width_m: 10, parked_vehicles: 1}}
    camera: {rig: first_person, start: {position: [0, -20, 0], yaw_deg: 0, pitch_deg: 0}, intrinsics: {fov_deg: 70}}
    motion: {policy: random_walk, random_walk: {segment_frames: [3, 6]}}
"""


def write_dataset(out: Path, *, with_actions: bool) -> Path:
    from pipeline.encode import EncodeSettings, encode_mp4
    from pipeline.shards import DatasetLayout, ShardWriter, encode_json, encode_npy

    layout = DatasetLayout(out)
    layout.shards_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(layout, max_bytes=50_000_000)
    for index in range(2):
        clip = gt.clip_from_manifest_text(HELD_OUT, "street", index)
        rgb, poses, K = gt.render(clip)
        members = {"mp4": encode_mp4(rgb, 8, EncodeSettings(crf=18, gop=8)),
                   "json": encode_json({"key": clip["key"], "caption": "a walk down a city street", "fps": 8,
                                        "frames": len(rgb), "source": "synthetic", "resolved_clip": clip})}
        if with_actions:
            members.update({"poses.npy": encode_npy(poses), "intrinsics.npy": encode_npy(K),
                            "actions.npy": encode_npy(np.asarray(clip["actions"]["per_frame"], np.float32))})
        writer.write(clip["key"], members)
    writer.close()
    return out


def write_checkpoint(out: Path, *, stage: str, run_id: str | None) -> Path:
    import torch

    from model.configs import get_config
    from model.vae import VideoVAE
    from model.world_model import WorldModel
    from training.export import write_export

    torch.manual_seed(0)
    overrides = {"frames": 9, "fps": 8, "height": 32, "width": 32}
    config = get_config("tiny", **overrides)
    vae = VideoVAE(config.vae).state_dict()
    weights = WorldModel(config).state_dict() if stage == "world" else vae
    return write_export(out, weights=weights, vae_weights=vae if stage == "world" else None,
                        state={"stage": stage, "model": "tiny", "model_overrides": overrides, "step": 7,
                               "mlflow_run_id": run_id}, source="tests/test_eval_cli.py")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two intra-op threads on 2 shared cores ran this tiny model's matmuls 11x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mlflow import MlflowClient

    from pipeline.mlflow_store import experiment_id

    root = tmp_path_factory.mktemp("eval")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = experiment_id(client, uri, "worldloom-tiny")  # artifacts beside the database
    training_run = client.create_run(experiment, run_name="tiny-world").info.run_id
    client.set_terminated(training_run, "FINISHED")
    return {"root": root, "uri": uri, "training_run": training_run,
            "checkpoint": write_checkpoint(root / "world-export", stage="world", run_id=training_run),
            "vae": write_checkpoint(root / "vae-export", stage="vae", run_id=None),
            "data": write_dataset(root / "held_out", with_actions=True),
            "no_actions": write_dataset(root / "real_like", with_actions=False)}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from pipeline.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eval_writes_report_plots_videos_and_an_mlflow_run(world, tmp_path: Path, capsys, monkeypatch) -> None:
    from mlflow import MlflowClient

    from pipeline.encode import decode_mp4

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    out = tmp_path / "eval"
    # 1.5 s at 8 fps = 13 frames: longer than the stored 12, so the continuation is rendered
    code, _, err = run_cli(["eval", str(world["checkpoint"]), "--data", str(world["data"]), "--out", str(out),
                            "--clips", "2", "--seconds", "1.5", "--steps", "1", "--cfg-text", "1", "--cfg-action", "1"],
                           capsys)
    assert code == 0, err
    assert "yaw-sign agreement" in err and "true actions" in err  # the summary table and lines

    report = json.loads((out / "report.json").read_text())
    assert report["clips"] == 2 and report["frames"] == 13 and report["resolution"] == [32, 32]
    assert [clip["source"] for clip in report["per_clip"]] == ["rendered", "rendered"]
    for key in ("yaw_sign_agreement", "expansion_agreement", "psnr_true_vs_shuffled_db", "rotation_error_deg_true",
                "rotation_error_deg_no_action", "rotation_error_deg_shuffled", "rotation_error_deg_ground_truth"):
        assert key in report, key
    assert 0.0 <= report["yaw_sign_agreement"] <= 1.0
    for control in ("true", "shuffled", "no_action"):
        psnr = report["fidelity"][control]["psnr_db"]
        assert len(psnr["per_second"]) == 2 and 0 < psnr["overall"] < 60
        assert 0 < report["fidelity"][control]["ssim"]["overall"] < 1
    assert report["action_response"]["starts"] == 2
    assert set(report["action_response"]["per_command"]) == {"turn_left", "turn_right", "forward", "back", "none"}
    for kind in ("turn", "out_and_back"):  # the simulator returns exactly: ground truth revisits itself
        revisit = report["revisit"][kind]
        assert revisit["trajectories"] == 2
        assert revisit["ground_truth_psnr_db"] == "inf" or revisit["ground_truth_psnr_db"] > 35, revisit
        assert revisit["ground_truth_ssim"] > 0.95 and isinstance(revisit["rollout_psnr_db"], float)

    assert (out / "plots" / "error_vs_horizon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "plots" / "action_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 2
    frames = decode_mp4(videos[0].read_bytes())
    assert frames.shape == (13, 32, 4 * 32, 3)  # ground truth | true | shuffled | no actions

    logged = report["mlflow"]
    assert logged["parent_run_id"] == world["training_run"] and logged["tracking_uri"] == world["uri"]
    client = MlflowClient(world["uri"])
    run = client.get_run(logged["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == world["training_run"]
    assert run.info.experiment_id == client.get_run(world["training_run"]).info.experiment_id
    assert "yaw_sign_agreement" in run.data.metrics and "psnr_db_true" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "psnr_db_true_by_second")) == 2
    assert run.data.params["eval.clips"] == "2"
    artifacts = {a.path for folder in ("eval", "eval/plots", "eval/videos")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"eval/report.json", "eval/plots/error_vs_horizon.png", "eval/plots/action_response.png"} <= artifacts
    assert any(path.startswith("eval/videos/") and path.endswith(".mp4") for path in artifacts)


@pytest.mark.parametrize("case, message", [
    ("vae", "is a 'vae' checkpoint"),
    ("no_actions", "has actions.npy and poses.npy"),
    ("missing_checkpoint", "not found"),
    ("missing_data", "folder not found"),
])
def test_bad_input_is_one_line_exit_2(world, tmp_path: Path, capsys, case: str, message: str) -> None:
    checkpoint, data = world["checkpoint"], world["data"]
    if case == "vae":
        checkpoint = world["vae"]
    elif case == "no_actions":
        data = world["no_actions"]
    elif case == "missing_checkpoint":
        checkpoint = tmp_path / "nope"
    else:
        data = tmp_path / "nope"
    out = tmp_path / "out"
    code, _, err = run_cli(["eval", str(checkpoint), "--data", str(data), "--out", str(out), "--clips", "1",
                            "--no-mlflow"], capsys)
    assert code == 2, err
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (out / "report.json").exists()
