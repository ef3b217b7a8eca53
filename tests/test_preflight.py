"""Training never hangs on data: the preflight refuses a rank without usable clips, the watchdog
stops a starved reader, and a damaged shard is skipped with a warning (or stops, by config).

Real H.264 clips in real tars written by `pipeline.shards.ShardWriter` with an index, 32x32 pixels."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shards import DatasetLayout, ShardWriter, write_index
from training.data import (ClipWindows, DataDamaged, DataStarved, WindowSpec, resolve_shards, window_fits,
                           window_preflight)
from training.testing import encode_mp4, npy_bytes, pattern_clip

SIZE, FPS = 32, 8
SPEC = WindowSpec(frames=8, fps=FPS, height=SIZE, width=SIZE)


def write_dataset(folder: Path, lengths: list[int], *, per_shard: int) -> Path:
    """A dataset whose clip i has lengths[i] frames; `per_shard` clips per shard, index with digests."""
    import json

    import numpy as np

    layout = DatasetLayout(folder)
    writer = ShardWriter(layout, max_count=per_shard)
    rows = []
    for index, frames in enumerate(lengths):
        key = f"clip_{index:05d}"
        members = {"mp4": encode_mp4(pattern_clip(index, frames, SIZE, SIZE), FPS),
                   "json": json.dumps({"key": key, "caption": f"clip {index}", "fps": FPS, "frames": frames}).encode(),
                   "actions.npy": npy_bytes(np.zeros((frames, 8), np.float32))}
        shard = writer.write(key, members)
        rows.append({"key": key, "status": "kept", "shard": shard, "frames": frames, "fps": float(FPS),
                     "width": SIZE, "height": SIZE, "member_sha256": dict(writer.last_member_sha256)})
    writer.close()
    write_index(layout.index_path, rows)
    return folder


def test_window_fits_matches_the_loader_rule() -> None:
    assert window_fits(8, FPS, SPEC) and not window_fits(7, FPS, SPEC)
    assert window_fits(15, 2 * FPS, SPEC) and not window_fits(14, 2 * FPS, SPEC)  # stride 2: 2*(8-1)+1 frames


def test_preflight_counts_per_rank_and_refuses_a_rank_with_only_short_clips(tmp_path: Path) -> None:
    # one shard, split sample by sample: rank 0 gets clips 0 and 2 (long), rank 1 gets 1 and 3 (short)
    folder = write_dataset(tmp_path / "mix", [12, 4, 12, 4], per_shard=4)
    report = window_preflight([(str(folder), 1.0)], SPEC, world_size=1, loader_workers=0, seed=0)
    assert (report.clips, report.usable, report.per_rank) == (4, 2, [2])
    with pytest.raises(DataStarved, match=r"rank 1 would get no clip long enough for a window of 8 frames"):
        window_preflight([(str(folder), 1.0)], SPEC, world_size=2, loader_workers=0, seed=0)
    # with longer clips for everyone both ranks pass, and the per-rank counts add up
    good = write_dataset(tmp_path / "good", [12, 9, 12, 9, 8, 3], per_shard=2)
    report = window_preflight([(str(good), 1.0)], SPEC, world_size=2, loader_workers=0, seed=0)
    assert report.usable == 5 and sum(report.per_rank) == 5 and min(report.per_rank) > 0


def test_trainer_preflight_refuses_in_one_line(tmp_path: Path) -> None:
    from training.config import DataSource, parse_config
    from training.trainer import preflight

    folder = write_dataset(tmp_path / "short", [12, 4, 12, 4], per_shard=4)
    config = parse_config({"stage": "vae", "model": "tiny", "steps": 1, "storage_path": str(tmp_path / "runs"),
                           "data": {"frames": 8, "fps": FPS, "resolution": [SIZE, SIZE]},
                           "scaling": {"num_workers": 2}})
    with pytest.raises(DataStarved) as caught:
        preflight(config, [DataSource(path=str(folder))], resume=False)
    assert "\n" not in caught.value.one_line() and "rank 1" in caught.value.one_line()


def test_watchdog_stops_a_starved_rank_instead_of_looping(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "mix", [12, 4, 12, 4], per_shard=4)
    shards = resolve_shards(str(folder))
    starved = ClipWindows([(shards, 1.0)], SPEC, seed=0, rank=1, world_size=2, shuffle_buffer=2)
    with pytest.raises(DataStarved, match="went a whole pass"):
        next(starved.samples())
    fed = ClipWindows([(shards, 1.0)], SPEC, seed=0, rank=0, world_size=2, shuffle_buffer=2).samples()
    assert {next(fed)["key"] for _ in range(6)} == {"clip_00000", "clip_00002"}


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_shard_is_skipped_with_a_warning_and_counted(tmp_path: Path, capfd) -> None:
    folder = write_dataset(tmp_path / "data", [10] * 6, per_shard=2)
    victim = folder / "shards" / "shard-000001.tar"
    _truncate(victim, 0.4)
    stream = ClipWindows([(resolve_shards(str(folder)), 1.0)], SPEC, seed=0, rank=0, world_size=1,
                         shuffle_buffer=2).samples()
    windows = [next(stream) for _ in range(8)]
    keys = {w["key"] for w in windows}
    # samples before the cut are whole and hash right, so they are still used; the cut one is not
    assert "clip_00003" not in keys and {"clip_00000", "clip_00004"} <= keys
    assert max(int(w["data_skipped"]) for w in windows) >= 1
    assert "shard-000001.tar" in capfd.readouterr().err


def test_damaged_shard_stops_in_one_line_when_asked(tmp_path: Path) -> None:
    import pickle

    folder = write_dataset(tmp_path / "data", [10] * 4, per_shard=2)
    _truncate(folder / "shards" / "shard-000000.tar", 0.5)
    stream = ClipWindows([(resolve_shards(str(folder)), 1.0)], SPEC, seed=0, rank=0, world_size=1,
                         shuffle_buffer=2, on_damaged="stop").samples()
    with pytest.raises(DataDamaged) as caught:
        for _ in range(8):
            next(stream)
    assert "shard-000000.tar" in caught.value.one_line()
    # it crosses process boundaries (DataLoader workers, Ray) intact, unlike webdataset's errors
    assert pickle.loads(pickle.dumps(caught.value)).one_line() == caught.value.one_line()


def test_sample_whose_bytes_differ_from_the_index_is_skipped(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "data", [10] * 2, per_shard=2)
    shard = folder / "shards" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    start = data.index(b"clip_00000.mp4") + 512 + 200   # inside the first clip's mp4 bytes
    for offset in range(start, start + 64):
        data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))
    stream = ClipWindows([(resolve_shards(str(folder)), 1.0)], SPEC, seed=0, rank=0, world_size=1,
                         shuffle_buffer=2).samples()
    windows = [next(stream) for _ in range(4)]
    assert {w["key"] for w in windows} == {"clip_00001"}
    assert int(windows[-1]["data_skipped"]) >= 1


def test_a_workers_one_line_error_is_unwrapped_from_ray_train() -> None:
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback

    from training.trainer import worker_user_error

    starved = DataStarved("rank 1 went a whole pass", hint="lower data.frames")
    wrapped = WorkerGroupError("rank 1 failed", {1: UserExceptionWithTraceback(starved, "Traceback ...")})
    assert worker_user_error(wrapped) is starved
    assert worker_user_error(WorkerGroupError("oom", {0: MemoryError()})) is None
    from model.errors import ModelError  # model/ has its own user-facing error (it imports nothing of ours)

    bad_shape = ModelError("frames=12: the causal VAE needs 1 + 4*k frames")
    assert worker_user_error(WorkerGroupError("rank 0 failed", {0: UserExceptionWithTraceback(bad_shape, "")})) is bad_shape


def test_train_command_refuses_a_starved_rank_in_one_red_line(tmp_path: Path, capsys) -> None:
    """The issue's hang: `train --num-workers 2` on a dataset where rank 1's share is too short."""
    import yaml

    from pipeline.cli import main as cli_main

    folder = write_dataset(tmp_path / "short", [12, 4, 12, 4], per_shard=4)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"stage": "vae", "model": "tiny", "steps": 1, "storage_path": str(tmp_path / "runs"),
                                      "data": {"frames": 8, "fps": FPS, "resolution": [SIZE, SIZE]}}))
    with pytest.raises(SystemExit) as caught:
        cli_main(["train", str(config), "--data", str(folder), "--num-workers", "2"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert caught.value.code == 1 and len(errors) == 1 and "Traceback" not in err
    assert "rank 1 would get no clip long enough" in errors[0] and "per rank [2, 0]" in errors[0]


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_an_interrupted_run_is_marked_killed_and_names_where_to_resume(tmp_path: Path, capsys, monkeypatch, how) -> None:
    """Ctrl-C or SIGTERM during fit: the MLflow run ends KILLED (not FAILED) and one line says how to resume.

    Only Ray Train's `fit` is replaced (by one that is interrupted); preflight, MLflow and the
    checkpoint lookup are the real ones."""
    import os
    import signal
    import time

    from mlflow import MlflowClient

    import training.trainer as trainer_module
    from training.config import DataSource, parse_config

    class InterruptedFit:
        def fit(self):
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises before this returns
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "init_ray", lambda *args, **kwargs: None)
    monkeypatch.setattr(trainer_module, "build_trainer", lambda *args, **kwargs: InterruptedFit())
    folder = write_dataset(tmp_path / "data", [12, 12], per_shard=2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = parse_config({"stage": "vae", "model": "tiny", "steps": 1, "storage_path": str(tmp_path / "runs"),
                           "data": {"frames": 8, "fps": FPS, "resolution": [SIZE, SIZE]},
                           "scaling": {"num_workers": 1}, "mlflow": {"tracking_uri": uri}})
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        trainer_module.train(config, [DataSource(path=str(folder))])
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is restored
    runs = MlflowClient(uri).search_runs([e.experiment_id for e in MlflowClient(uri).search_experiments()])
    assert [run.info.status for run in runs] == ["KILLED"]
    err = capsys.readouterr().err
    assert "KILLED" in err and "no checkpoint was saved yet" in err and "--resume" in err
