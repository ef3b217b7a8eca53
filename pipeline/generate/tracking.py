"""The MLflow data run: parameters, counts, throughput, index, dataset.json, contact sheet.

It goes to the project's one store (pipeline/mlflow_store.py), tagged with the dataset folder
and the sha256 of its dataset.json, so a training run on this dataset can link to it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from pipeline.mlflow_store import experiment_id as _experiment_id
from pipeline.mlflow_store import quiet_logs, store_uri

DATA_KIND = "data"


def tracking_uri(out: Path | None = None, configured: str | None = None) -> str:
    """MLFLOW_TRACKING_URI wins, then the config, then the project store (`out` is not used: one store per project)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or store_uri()


def dataset_digest(dataset_json: Path) -> str:
    """sha256 of a dataset's dataset.json: names the exact dataset state a run used."""
    return hashlib.sha256(Path(dataset_json).read_bytes()).hexdigest()


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, into)
    else:
        into[prefix] = str(value)[:500]


def log_data_run(*, out: Path, uri: str, experiment: str, params: dict[str, Any], metrics: dict[str, float],
                 artifacts: list[Path], run_name: str) -> str:
    """Log through an explicit MlflowClient: `mlflow.set_tracking_uri` would also set
    MLFLOW_TRACKING_URI in this process and silently redirect every later run (e.g. training)."""
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    quiet_logs()
    client = MlflowClient(uri)
    tags = {"worldloom.kind": DATA_KIND, "worldloom.out": str(Path(out).resolve())}
    if (Path(out) / "dataset.json").is_file():
        tags["worldloom.dataset_json_sha256"] = dataset_digest(Path(out) / "dataset.json")
    run = client.create_run(_experiment_id(client, uri, experiment), run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = sorted(flat.items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(run_id, params=[Param(k, v) for k, v in items[start:start + 100]])
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(name, float(value), now, 0) for name, value in metrics.items()],
                         tags=[RunTag("mlflow.runName", run_name)])
        for artifact in artifacts:
            if Path(artifact).exists():
                client.log_artifact(run_id, str(artifact))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def find_data_run(client: Any, dataset: Path) -> str | None:
    """The latest finished data run that wrote `dataset` (by its absolute path), in any experiment."""
    from mlflow.entities import ViewType

    folder = str(Path(dataset).resolve()).replace("'", "\\'")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiments:
        return None
    runs = client.search_runs(experiments, filter_string=f"tags.`worldloom.kind` = '{DATA_KIND}' and "
                                                          f"tags.`worldloom.out` = '{folder}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None
