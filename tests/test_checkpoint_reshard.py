"""Sharded checkpoints across world sizes on real Ray Train workers (gloo, DDP): save on 2 workers
and resume on 1, and the reverse; the MLflow loss curve continues in one run, the optimizer's
step count and the LR schedule continue from the checkpoint (a fresh AdamW would restart at 0)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.testing import write_pattern_shards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_pattern_shards(tmp_path_factory.mktemp("patterns"), num_shards=2, clips_per_shard=2, frames=12)


def _config(storage: Path, name: str, workers: int, steps: int) -> dict:
    return {"stage": "vae", "model": "tiny", "steps": steps, "batch_size": 1, "seed": 0, "ema_decay": 0.9,
            "name": name, "storage_path": str(storage),
            "data": {"frames": 5, "fps": 8, "resolution": [32, 32], "shuffle_buffer": 2},
            "optim": {"lr": 3e-3, "warmup_steps": 1, "weight_decay": 0.0},
            "checkpoint": {"every": 2, "keep": 2},
            "mlflow": {"experiment": "test-reshard", "log_every": 1, "log_system_metrics": False},
            "scaling": {"num_workers": workers, "max_failures": 0}}


def _optimizer_steps(checkpoint: Path) -> set[float]:
    from safetensors import safe_open

    steps = set()
    for path in (checkpoint / "shards").glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            steps |= {float(handle.get_tensor(k)) for k in handle.keys() if k.endswith(".step")}
    return steps


@pytest.mark.timeout(900)
def test_save_on_2_workers_resume_on_1_then_on_2_again(shards: Path, tmp_path: Path, ray_session) -> None:
    """One chain (each Ray Train start costs seconds): 2 workers to step 2, 1 worker to 4, 2 to 6."""
    from mlflow import MlflowClient

    from training import api
    from training.config import parse_config

    first = api.train(parse_config(_config(tmp_path, "reshard", 2, steps=2)), [str(shards)])
    saved = Path(first.checkpoint)
    assert len(list((saved / "shards").glob("*.safetensors"))) == 2  # one shard per rank, no gather
    assert _optimizer_steps(saved) == {2.0}
    run_id, previous = first.mlflow_run_id, 2
    for workers, steps in ((1, 4), (2, 6)):
        resumed = api.train(parse_config(_config(tmp_path, "reshard", workers, steps=steps)), [str(shards)],
                            resume=True)
        final = Path(resumed.checkpoint)
        state = json.loads((final / "state.json").read_text())
        assert resumed.step == steps and state["world_size"] == workers and resumed.mlflow_run_id == run_id
        assert _optimizer_steps(final) == {float(steps)}  # AdamW moments continued, not restarted
        assert state["scheduler"]["last_epoch"] == steps and state["ema"]["updates"] == steps
        events = [json.loads(line) for line in (resumed.run_dir / "workers" / "events.jsonl").read_text().splitlines()]
        start = [e for e in events if e["event"] == "start"][-1]
        assert start["restored"] and start["start_step"] == previous and start["world_size"] == workers
        previous = steps

    history = MlflowClient(resumed.tracking_uri).get_metric_history(run_id, "loss")
    losses = {m.step: m.value for m in history}
    assert sorted(losses) == list(range(1, 7))  # one MLflow run; the curve continues across world sizes
    assert torch.isfinite(torch.tensor(list(losses.values()))).all()
    # restored weights: after each resume the loss stays below the initial loss (a reset would not)
    assert max(losses[3], losses[5]) < losses[1], losses
