"""MLflow tracking: the run is created on the driver, rank 0 logs into it.

Why the driver creates the run: workers restart after failures and on `--resume`; if each start
created its own run, one training job would be scattered over many MLflow runs. The driver
creates (or reopens) one run and passes its id to the workers; the id is also stored in every
checkpoint, so a resumed job continues the same MLflow run.

Tracking store: `mlflow.tracking_uri` from the config, else $MLFLOW_TRACKING_URI, else a SQLite
file `mlflow.db` in the run folder (SQLite is fine for one machine; multi-node runs need an
`mlflow server`, because rank 0 may land on any node).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from training.video_io import encode_gif, encode_mp4


def resolve_tracking_uri(configured: str | None, run_dir: Path) -> str:
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    run_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def open_run(tracking_uri: str, experiment: str, run_name: str, run_id: str | None, tags: dict[str, str]) -> str:
    """Driver side: reopen `run_id` if given and present, else create a run; returns its id."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    if run_id:
        try:
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "worldloom.resumed", "true")
            return run_id
        except MlflowException:
            pass  # the store was reset: start a fresh run rather than fail the training job
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    return client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def close_run(tracking_uri: str, run_id: str, status: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).set_terminated(run_id, status=status)


class Rank0Tracker:
    """Logs from rank 0 only; on other ranks every method is a no-op.

    Uses the fluent API inside `mlflow.start_run(run_id=...)` so that system metrics (CPU,
    memory, disk, network; GPU with pynvml) are sampled in the background for this run.
    """

    def __init__(self, rank: int, tracking_uri: str | None, run_id: str | None, *,
                 system_metrics: bool = True, system_metrics_interval: float = 5.0) -> None:
        self.active = rank == 0 and tracking_uri is not None and run_id is not None
        self.run_id = run_id
        self._mlflow = None
        if not self.active:
            return
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        if system_metrics:
            mlflow.system_metrics.set_system_metrics_sampling_interval(system_metrics_interval)
        mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
        self._mlflow = mlflow

    def log_config(self, flat_params: dict[str, str], resolved: dict[str, Any]) -> None:
        """Params once per run (MLflow refuses to change a param); the full config as an artifact each start."""
        if not self.active:
            return
        existing = self._mlflow.get_run(self.run_id).data.params
        fresh = {k: v[:6000] for k, v in flat_params.items() if k not in existing}
        changed = sorted(k for k, v in flat_params.items() if k in existing and existing[k] != v[:6000])
        if fresh:
            self._mlflow.log_params(fresh)
        if changed:
            self._mlflow.set_tag("worldloom.config_changed_on_resume", ",".join(changed)[:5000])
        self._mlflow.log_dict(resolved, "config/resolved.json")

    def log_provenance(self, provenance: dict[str, Any]) -> None:
        """Shard list and index hash per source, as an artifact, tags and MLflow dataset inputs."""
        if not self.active:
            return
        self._mlflow.log_dict(provenance, "data/provenance.json")
        for index, source in enumerate(provenance["sources"]):
            self._mlflow.set_tag(f"data.source.{index}.index_sha256", source["index_sha256"])
            self._mlflow.set_tag(f"data.source.{index}.shards", str(len(source["shards"])))
        try:
            from mlflow.data.meta_dataset import MetaDataset
            from mlflow.data.dataset_source_registry import resolve_dataset_source

            for source in provenance["sources"]:
                dataset = MetaDataset(source=resolve_dataset_source(os.path.abspath(source["path"])),
                                      name=os.path.basename(source["path"].rstrip("/")) or "shards",
                                      digest=source["index_sha256"][:36])
                self._mlflow.log_input(dataset, context="training")
        except Exception as error:  # lineage is a convenience; never fail a run over it
            self._mlflow.set_tag("worldloom.dataset_input_error", str(error)[:500])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.active:
            self._mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)}, step=step)

    def log_rollout(self, frames_THW3: np.ndarray, fps: float, step: int, name: str = "rollout") -> None:
        """An mp4 and a GIF under `samples/` named by step."""
        if not self.active:
            return
        with tempfile.TemporaryDirectory() as folder:
            base = Path(folder) / f"{name}_step{step:08d}"
            base.with_suffix(".mp4").write_bytes(encode_mp4(frames_THW3, fps))
            base.with_suffix(".gif").write_bytes(encode_gif(frames_THW3, fps))
            self._mlflow.log_artifact(str(base.with_suffix(".mp4")), "samples")
            self._mlflow.log_artifact(str(base.with_suffix(".gif")), "samples")

    def log_checkpoint(self, folder: Path, step: int) -> None:
        if self.active:
            self._mlflow.log_artifacts(str(folder), "checkpoint")
            self._mlflow.set_tag("worldloom.final_checkpoint_step", str(step))

    def log_event(self, text: str) -> None:
        if self.active:
            self._mlflow.set_tag("worldloom.last_event", text[:500])

    def close(self) -> None:
        """End the fluent run without marking it finished: the driver sets the final status."""
        if self.active and self._mlflow.active_run() is not None:
            self._mlflow.end_run(status="RUNNING")

