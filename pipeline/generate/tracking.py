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
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    flat: dict[str, str] = {}
    _flatten("", params, flat)
    with mlflow.start_run(run_name=run_name, tags={"worldloom.kind": "data", "worldloom.out": str(out)}) as run:
        mlflow.log_params(flat)
        mlflow.log_metrics({name: float(value) for name, value in metrics.items()})
        for artifact in artifacts:
            if Path(artifact).exists():
                mlflow.log_artifact(str(artifact))
        return run.info.run_id
