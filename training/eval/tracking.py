"""MLflow for the eval: a new run beside the checkpoint's training run, linked to it.

Why a new run rather than writing into the training run: a checkpoint is evaluated many times
(other data, other horizons), and the training run's metrics are keyed by step. The eval run
sits in the training run's experiment and store, as its child (`mlflow.parentRunId`), with tags
naming the checkpoint and step, so the MLflow UI shows evals under the run they measure. The
store is the training config's `mlflow.tracking_uri` when it named one, else the project's one
store (pipeline/mlflow_store.py: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db); this module
never builds a URI itself. When the training run is not in that store (a copied checkpoint, an
export from elsewhere), the eval run goes to experiment `worldloom-eval` of the same store.

Logged through an explicit MlflowClient: the fluent API would leak the tracking URI into later
runs of the same process (the same reason generate does it).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

METRIC_KEYS = ("yaw_sign_agreement", "expansion_agreement", "psnr_true_db", "psnr_shuffled_db", "psnr_no_action_db",
               "psnr_true_vs_shuffled_db", "rotation_error_deg_true", "rotation_error_deg_shuffled",
               "rotation_error_deg_no_action", "rotation_error_deg_ground_truth")


def store_for(bundle, tracking_uri: str | None) -> str:
    """`tracking_uri` when given, else the store the checkpoint's training config named, else the
    project's one store (pipeline/mlflow_store.py, through training.tracking)."""
    from training import tracking

    if tracking_uri:
        return tracking_uri
    configured = ((bundle.state.get("config") or {}).get("mlflow") or {}).get("tracking_uri")
    return tracking.resolve_tracking_uri(configured)


def log_eval(report: dict[str, Any], out: Path, bundle, *, tracking_uri: str | None = None) -> dict[str, str]:
    """Create the eval run, log params, metrics (headline and per second) and the output folder."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.mlflow_store import experiment_id as project_experiment
    from pipeline.mlflow_store import quiet_logs

    quiet_logs()
    uri = store_for(bundle, tracking_uri)
    client = MlflowClient(uri)
    parent_id = report.get("training_run_id")
    experiment_id = None
    if parent_id:
        try:
            experiment_id = client.get_run(parent_id).info.experiment_id
        except MlflowException:
            parent_id = None
    if experiment_id is None:
        experiment_id = project_experiment(client, uri, "worldloom-eval")
    tags = {"worldloom.kind": "eval", "worldloom.checkpoint": str(report["checkpoint"]),
            "worldloom.checkpoint_step": str(report.get("checkpoint_step")), "worldloom.eval_data": str(report["data"])}
    if parent_id:
        tags.update({"mlflow.parentRunId": parent_id, "worldloom.eval_of_run": parent_id})
    name = f"eval-{Path(report['checkpoint']).name}-{Path(str(report['data'])).name}"
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    try:
        params = {f"eval.{k}": str(v) for k, v in report["options"].items()}
        params.update({"eval.data": str(report["data"]), "eval.checkpoint": str(report["checkpoint"]),
                       "eval.frames": str(report["frames"]), "eval.fps": str(report["fps"])})
        for key, value in params.items():
            client.log_param(run_id, key, value[:6000])
        for key in METRIC_KEYS:
            value = report.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                client.log_metric(run_id, key, float(value))
        for control, block in report["fidelity"].items():
            for name_, curve in block.items():
                _log_curve(client, run_id, f"{name_}_{control}", curve)
        for control, block in report["camera"].items():
            for name_, curve in block.items():
                _log_curve(client, run_id, f"{name_}_{control}", curve)
        client.log_artifacts(run_id, str(out), artifact_path="eval")
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return {"tracking_uri": uri, "run_id": run_id, "experiment_id": str(experiment_id), "parent_run_id": parent_id or ""}


def _log_curve(client, run_id: str, name: str, curve: dict[str, Any]) -> None:
    """The overall value, and one point per second of horizon (step = the second)."""
    overall = curve.get("overall")
    if isinstance(overall, float) and math.isfinite(overall):
        client.log_metric(run_id, f"{name}", overall)
    for second, value in enumerate(curve.get("per_second") or [], start=1):
        if isinstance(value, float) and math.isfinite(value):
            client.log_metric(run_id, f"{name}_by_second", value, step=second)
