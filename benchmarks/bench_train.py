"""Tiny training throughput on Ray Train: tokens/s with 1 and 2 CPU workers, and the data-wait fraction.

    .venv/bin/python benchmarks/bench_train.py [--data DATASET] [--steps 30]

Trains the tiny VAE (9-frame 64x64 windows) for --steps steps with 1 worker, then with 2 (DDP,
gloo), in one local Ray instance, and reads the logged metrics back from MLflow. tokens/s counts
latent cells (F x h x w) per clip over all workers, averaged over the steps after the first five
(warm-up). Prints both and the 2/1 scaling ratio. On a 2-core machine two workers share the cores
with the data loading, so the ratio is bounded well below 2.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(data: str, storage: Path, workers: int, steps: int) -> dict[str, float]:
    from mlflow import MlflowClient

    from training import api
    from training.config import parse_config

    config = parse_config({
        "stage": "vae", "model": "tiny", "steps": steps, "batch_size": 2, "name": f"bench-{workers}w",
        "storage_path": str(storage), "data": {"frames": 9, "fps": 8, "resolution": [64, 64], "shuffle_buffer": 8},
        "optim": {"lr": 1e-3, "warmup_steps": 2}, "checkpoint": {"every": steps},
        "mlflow": {"log_every": 1, "log_system_metrics": False}, "scaling": {"num_workers": workers, "max_failures": 0},
    })
    result = api.train(config, [data])
    client = MlflowClient(result.tracking_uri)

    def steady(name: str) -> float:
        history = sorted(client.get_metric_history(result.mlflow_run_id, name), key=lambda m: m.step)
        return statistics.median(m.value for m in history[5:])

    return {"tokens_per_s": steady("tokens_per_s"), "samples_per_s": steady("samples_per_s"),
            "data_wait_fraction": steady("data_wait_fraction"), "wall_s": result.wall_s}


def main() -> None:
    import ray

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None, help="dataset folder (default: synthetic pattern shards, 160x90)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    with tempfile.TemporaryDirectory() as folder:
        data = args.data
        if data is None:
            from training.testing import write_pattern_shards

            data = str(write_pattern_shards(Path(folder) / "data", num_shards=4, clips_per_shard=8, frames=16,
                                            height=90, width=160, fps=8))
        one = run(data, Path(folder) / "runs", 1, args.steps)
        two = run(data, Path(folder) / "runs", 2, args.steps)
    ray.shutdown()
    for name, result in (("1 worker ", one), ("2 workers", two)):
        print(f"{name}: {result['tokens_per_s']:8.0f} tokens/s  {result['samples_per_s']:6.2f} clips/s  "
              f"data wait {result['data_wait_fraction']:.1%}  (run {result['wall_s']:.0f} s incl. worker start)")
    print(f"scaling 2/1 workers: {two['tokens_per_s'] / one['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
