"""The MLflow data run: parameters, counts, throughput, index, dataset.json, contact sheet."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def tracking_uri(out: Path, configured: str | None) -> str:
    """MLFLOW_TRACKING_URI wins, then the config, then a SQLite file inside the dataset."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or f"sqlite:///{Path(out).resolve()}/mlflow.db"


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
    import logging
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={"worldloom.kind": "data", "worldloom.out": str(out)})
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
