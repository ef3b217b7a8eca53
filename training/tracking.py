"""MLflow tracking: the run is created on the driver, rank 0 logs into it.

Why the driver creates the run: workers restart after failures and on `--resume`; if each start
created its own run, one training job would be scattered over many MLflow runs. The driver
creates (or reopens) one run and passes its id to the workers; the id is also stored in every
checkpoint, so a resumed job continues the same MLflow run.

Tracking store: `mlflow.tracking_uri` from the config, else the project's one store
(pipeline/mlflow_store.py: $MLFLOW_TRACKING_URI, else `sqlite:///runs/mlflow.db` with artifacts
beside it), shared with generate and eval so one `mlflow ui` shows them all. SQLite is fine for
one machine; multi-node runs need an `mlflow server`, because rank 0 may land on any node.

Lineage: every dataset a run reads is logged as an MLflow dataset input named after its folder
with the sha256 of its dataset.json as digest; the run is tagged with the generate run(s) that
made the data (`worldloom.generate_run_id`, found through dataset.json `parents` for select/mix
results) and, for the world stage, with the VAE's run (`worldloom.vae_run_id`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from training.video_io import encode_gif, encode_mp4


def resolve_tracking_uri(configured: str | None, run_dir: Path | None = None) -> str:
    """The config's URI, else the project store (`run_dir` is not used any more: one store per project)."""
    from pipeline.mlflow_store import store_uri

    return configured or store_uri()


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
    from pipeline.mlflow_store import experiment_id, quiet_logs

    quiet_logs()
    return client.create_run(experiment_id(client, tracking_uri, experiment), run_name=run_name, tags=tags).info.run_id


def close_run(tracking_uri: str, run_id: str, status: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).set_terminated(run_id, status=status)


def dataset_folder(path: str) -> Path | None:
    """The dataset folder (the one holding dataset.json) of a source path, folder or shard pattern."""
    if "://" in path and not path.startswith("file://"):
        return None
    candidate = Path(path.removeprefix("file://")).expanduser()
    for folder in (candidate, candidate.parent, candidate.parent.parent):
        if (folder / "dataset.json").is_file():
            return folder.resolve()
    return None


def dataset_json_digest(folder: Path | None) -> str | None:
    if folder is None:
        return None
    from pipeline.generate.tracking import dataset_digest

    return dataset_digest(folder / "dataset.json")


def generate_run_ids(client: Any, folder: Path, depth: int = 0) -> list[str]:
    """The generate run that wrote `folder`, or those of its parents (select/mix record `parents`)."""
    import json

    from pipeline.generate.tracking import find_data_run

    found = find_data_run(client, folder)
    if found or depth >= 4:
        return [found] if found else []
    try:
        parents = json.loads((folder / "dataset.json").read_text()).get("parents") or []
    except (OSError, ValueError, AttributeError):
        return []
    out: list[str] = []
    for parent in parents[:32]:
        if isinstance(parent, dict) and parent.get("path") and Path(parent["path"]).is_dir():
            out += generate_run_ids(client, Path(parent["path"]), depth + 1)
    return out


def vae_run_id(vae_checkpoint: str | None) -> str | None:
    """The MLflow run that trained the VAE checkpoint a world run starts from (from its state.json)."""
    if not vae_checkpoint or ("://" in vae_checkpoint and not vae_checkpoint.startswith("file://")):
        return None
    import json

    from training.checkpoint import latest_checkpoint

    try:
        folder = Path(vae_checkpoint.removeprefix("file://"))
        if not (folder / "state.json").is_file():
            folder = latest_checkpoint(folder)
        return json.loads((folder / "state.json").read_text()).get("mlflow_run_id")
    except Exception:  # a link is a convenience; never fail a run over it
        return None


class Rank0Tracker:
    """Logs from rank 0 only; on other ranks every method is a no-op.

    Uses the fluent API inside `mlflow.start_run(run_id=...)` so that system metrics (CPU,
    memory, disk, network; GPU with pynvml) are sampled in the background for this run.
    """

    def __init__(self, rank: int, tracking_uri: str | None, run_id: str | None, *,
                 system_metrics: bool = True, system_metrics_interval: float = 5.0) -> None:
        self.active = rank == 0 and tracking_uri is not None and run_id is not None
        self.run_id = run_id
        self.tracking_uri = tracking_uri
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
        vae_run = vae_run_id(resolved.get("vae_checkpoint"))
        if vae_run:
            self._mlflow.set_tag("worldloom.vae_run_id", vae_run)

    def log_provenance(self, provenance: dict[str, Any]) -> None:
        """Shard list and index hash per source, as an artifact, tags and MLflow dataset inputs."""
        if not self.active:
            return
        self._mlflow.log_dict(provenance, "data/provenance.json")
        for index, source in enumerate(provenance["sources"]):
            self._mlflow.set_tag(f"data.source.{index}.index_sha256", source["index_sha256"])
            self._mlflow.set_tag(f"data.source.{index}.shards", str(len(source["shards"])))
        try:
            from mlflow import MlflowClient
            from mlflow.data.dataset_source_registry import resolve_dataset_source
            from mlflow.data.meta_dataset import MetaDataset

            generate_runs: list[str] = []
            for source in provenance["sources"]:
                folder = dataset_folder(source["path"])
                digest = dataset_json_digest(folder) or source["index_sha256"]
                dataset = MetaDataset(source=resolve_dataset_source(str(folder or os.path.abspath(source["path"]))),
                                      name=(folder.name if folder else os.path.basename(source["path"].rstrip("/"))) or "shards",
                                      digest=digest[:36])
                self._mlflow.log_input(dataset, context="training",
                                       tags={"dataset_json_sha256": digest, "weight": str(source.get("weight", 1.0))})
                if folder is not None:
                    generate_runs += generate_run_ids(MlflowClient(self.tracking_uri), folder)
            if generate_runs:
                self._mlflow.set_tag("worldloom.generate_run_id", ",".join(dict.fromkeys(generate_runs))[:5000])
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

    def log_export(self, folder: Path, step: int, name: str = "world-model") -> str | None:
        """The export (EMA weights + config, not the optimizer state) as an MLflow logged model."""
        if not self.active:
            return None
        return log_export_model(self._mlflow.MlflowClient(), self.run_id, folder, step, name)

    def log_event(self, text: str) -> None:
        if self.active:
            self._mlflow.set_tag("worldloom.last_event", text[:500])

    def close(self) -> None:
        """End the fluent run without marking it finished: the driver sets the final status."""
        if self.active and self._mlflow.active_run() is not None:
            self._mlflow.end_run(status="RUNNING")



def log_export_model(client: Any, run_id: str, folder: Path, step: int, name: str) -> str:
    """Create a LoggedModel linked to `run_id`, upload the export folder into it, mark it READY.

    A plain logged model with files (no MLflow flavour): flavours would pickle a Python object,
    and the export is meant to be loaded by `worldloom sample` / `training.export.load_export`.
    Returns the model id (also set as the run tag `worldloom.export_model_id`).
    """
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    experiment_id = client.get_run(run_id).info.experiment_id
    params = {k: str(config.get(k)) for k in ("stage", "model", "step", "parameters")}
    params["model_overrides"] = json.dumps(config.get("model_overrides") or {}, sort_keys=True)
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, params=params,
                                       tags={"worldloom.format": str(config.get("format"))},
                                       model_type="worldloom-export")
    try:
        client.log_model_artifacts(model.model_id, str(folder))
    except Exception:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    client.set_tag(run_id, "worldloom.export_model_id", model.model_id)
    client.set_tag(run_id, "worldloom.final_checkpoint_step", str(step))
    return model.model_id
