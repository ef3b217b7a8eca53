"""One MLflow store per project: where generate, train, eval and the demo log their runs.

Why one store: with a store per dataset and per training run, experiment ids from different
stores collided in the one `./mlruns` artifact folder of whatever directory a command ran in,
and no single `mlflow ui` showed a dataset next to the runs trained on it. Now:

    $MLFLOW_TRACKING_URI                      when set (an `mlflow server`, another SQLite file)
    sqlite:///<runs>/mlflow.db                else; <runs> is $WORLDLOOM_RUNS or ./runs
    <folder of the .db>/mlartifacts/<name>    artifacts of experiment <name> in a SQLite store

Artifacts: a SQLite store has no artifact root of its own, and MLflow then defaults to
`./mlruns` *relative to the current directory*; so every experiment we create gets an explicit
`artifact_location` beside the database. (A server store keeps its own artifact root.)

    mlflow ui --backend-store-uri sqlite:///runs/mlflow.db     # shows every run of the project
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

RUNS_ENV = "WORLDLOOM_RUNS"


def runs_folder() -> Path:
    """The project-level runs folder ($WORLDLOOM_RUNS, else ./runs), absolute."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser().resolve()


def store_uri() -> str:
    """The tracking URI every command uses unless its config names one."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    folder = runs_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).expanduser().resolve()  # "sqlite:////abs" or "sqlite:///rel"


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite database; the server's choice otherwise."""
    database = sqlite_path(uri)
    if database is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment) or "default"
    return (database.parent / "mlartifacts" / safe).as_uri()


def experiment_id(client: Any, uri: str, name: str) -> str:
    """Get or create experiment `name` in `client`'s store, with artifacts beside a SQLite store."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri, name))
    except MlflowException:  # created meanwhile by another process of the same project
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def ui_command(uri: str) -> str:
    """The one command that shows every run of this store."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"


def quiet_logs() -> None:
    """MLflow's and alembic's INFO lines (schema migrations of a new SQLite store) are noise in a CLI."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
