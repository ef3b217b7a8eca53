"""Driver side of `worldloom train`: resolve the run, open the MLflow run, run Ray Train's TorchTrainer.

Where things go (local storage):

    <storage_path>/<run name>/             Ray Train's run folder (checkpoint_00000040/, state)
    <storage_path>/<run name>/mlflow.db    default MLflow store (SQLite)
    <storage_path>/<run name>/workers/     heartbeat per rank and events.jsonl

With a remote `storage_path` (s3://..., gs://..., or a shared filesystem on a cluster) the
checkpoints go there and the local run folder is ./runs/<run name>.

Reusing a run name with the same storage path resumes it in Ray Train; to avoid doing that by
accident, an existing run with checkpoints needs `--resume` (or a new `name`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import UserError
from model.errors import ModelError
from pipeline.ray_runtime import init_ray
from training import tracking
from training.checkpoint import latest_checkpoint
from training.config import DataSource, TrainConfig
from training.data import provenance, resolve_shards


@dataclass
class RunPaths:
    name: str
    storage_path: str      # what Ray Train gets (absolute local path or URI)
    run_dir: Path          # local folder: mlflow.db, workers/
    local_storage: bool

    @property
    def ray_run_folder(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"


@dataclass
class TrainResult:
    run_name: str
    run_dir: Path
    checkpoint: str                 # path or URI of the last checkpoint folder
    step: int
    mlflow_run_id: str
    tracking_uri: str
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


def run_paths(config: TrainConfig) -> RunPaths:
    name = config.run_name()
    storage = config.storage_path
    if "://" in storage and not storage.startswith("file://"):
        return RunPaths(name, storage, Path("runs").resolve() / name, local_storage=False)
    local = Path(storage.removeprefix("file://")).expanduser().resolve()
    return RunPaths(name, str(local), local / name, local_storage=True)


def existing_checkpoint(paths: RunPaths) -> Path | None:
    if not paths.local_storage:
        return None  # remote storage: Ray Train itself finds the latest checkpoint
    try:
        return latest_checkpoint(Path(paths.ray_run_folder))
    except UserError:
        return None


def resolve_sources(config: TrainConfig, data: list[DataSource] | None) -> list[tuple[str, float]]:
    chosen = data if data else config.data.sources
    if not chosen and not (config.stage == "world" and config.data.latents):
        raise UserError("no training data: pass --data DATASET (repeatable, DATASET:WEIGHT to mix) "
                        "or set data.sources in the config")
    sources = [(s.path, s.weight) for s in chosen]
    for path, _ in sources:
        resolve_shards(path)  # raises a one-line UserError for a bad path
    return sources


def build_trainer(config: TrainConfig, paths: RunPaths, loop_config: dict[str, Any]):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from training.loop import train_loop

    scaling = config.scaling
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.gpus_per_worker:
        resources["GPU"] = scaling.gpus_per_worker
    return TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=scaling.num_workers, use_gpu=scaling.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=paths.name,
            storage_path=paths.storage_path,
            failure_config=FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoint.keep),
        ),
    )


def preflight(config: TrainConfig, data: list[DataSource] | None, *, resume: bool
              ) -> tuple[TrainConfig, RunPaths, list[tuple[str, float]], Path | None]:
    """Every check that needs no Ray: data paths, run folder vs --resume. Raises UserError."""
    config = _absolute_paths(config)
    paths = run_paths(config)
    sources = [(_absolute(p), w) for p, w in resolve_sources(config, data)]
    previous = existing_checkpoint(paths)
    if previous is not None and not resume:
        raise UserError(f"{paths.ray_run_folder}: run {paths.name!r} already has checkpoints (latest {previous.name})",
                        hint="pass --resume to continue it, or set a different `name` in the config")
    if resume and previous is None and paths.local_storage:
        raise UserError(f"--resume: no checkpoint in {paths.ray_run_folder}",
                        hint="drop --resume to start the run, or check `name` and `storage_path`")
    if config.stage == "world" and config.vae_checkpoint and "://" not in config.vae_checkpoint:
        try:  # a clear error now, not in every worker later
            latest_checkpoint(Path(config.vae_checkpoint))
        except UserError as error:
            raise UserError(f"config field vae_checkpoint: {error.message}", hint=error.hint) from None
    data_preflight(config, sources)
    return config, paths, sources, previous


def data_preflight(config: TrainConfig, sources: list[tuple[str, float]]):
    """Clips long enough for the window, in total and per rank; refuses (one line) when a rank gets none.

    Without this check a rank whose share holds only short clips skips forever while the
    others wait for it in DDP backward (issue 13). Latent shards (`data.latents`) are windows
    already and are not checked. Returns the `DataPreflight` (None for latents).
    """
    from training.data import WindowSpec, window_preflight
    from training.steps import model_config

    if not sources or (config.stage == "world" and config.data.latents):
        return None
    model_cfg = model_config(config)
    spec = WindowSpec(frames=model_cfg.frames, fps=model_cfg.fps, height=model_cfg.height, width=model_cfg.width)
    key = (tuple(sources), spec.frames, spec.fps, spec.height, spec.width, config.scaling.num_workers,
           config.data.loader_workers, config.seed)
    if key not in _PREFLIGHTS:  # the CLI checks before its progress bar, train() again: scan and print once
        report = window_preflight(sources, spec, world_size=config.scaling.num_workers,
                                  loader_workers=config.data.loader_workers, seed=config.seed)
        import click

        click.echo(report.summary(spec), err=True)
        _PREFLIGHTS[key] = report
    return _PREFLIGHTS[key]


_PREFLIGHTS: dict[tuple, Any] = {}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler or `kill`) ends training like Ctrl-C: MLflow run KILLED, checkpoint named.

    Only the main thread may install handlers; elsewhere (a test runner thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say_interrupted(checkpoint: Path | None) -> None:
    import click

    where = f"last checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint was saved yet"
    click.secho(f"training stopped (MLflow run marked KILLED); {where}; re-run with --resume to continue",
                fg="yellow", err=True)


def train(config: TrainConfig, data: list[DataSource] | None = None, *, resume: bool = False,
          ray_address: str | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Run (or resume) a training job to completion; returns where the results are."""
    config, paths, sources, previous = preflight(config, data, resume=resume)
    # before the MLflow run opens, so a cluster that refuses leaves no RUNNING run behind:
    # a private local instance unless --ray-address/$RAY_ADDRESS names a cluster (pipeline/ray_runtime.py);
    # locally, one logical CPU per worker plus one for Ray Train's controller and the data stage
    init_ray(ray_address, num_cpus=max(os.cpu_count() or 1,
                                       int(config.scaling.num_workers * config.scaling.cpus_per_worker) + 1))

    paths.run_dir.mkdir(parents=True, exist_ok=True)
    tracking_uri = tracking.resolve_tracking_uri(config.mlflow.tracking_uri, paths.run_dir)
    previous_run_id = _run_id_of(previous) if previous is not None else None
    run_id = tracking.open_run(tracking_uri, config.mlflow.experiment, paths.name, previous_run_id,
                               tags={"worldloom.stage": config.stage, "worldloom.model": config.model})
    resolved = config.model_dump(mode="json")
    resolved["data"]["sources"] = [{"path": p, "weight": w} for p, w in sources]
    loop_config = {"config": resolved, "resolved": resolved, "sources": sources, "run_dir": str(paths.run_dir),
                   "tracking_uri": tracking_uri, "run_id": run_id,
                   "provenance": provenance(sources) if sources else {"sources": []}}

    trainer = build_trainer(config, paths, loop_config)
    started = time.perf_counter()
    watcher = _HeartbeatWatcher(paths.run_dir / "workers" / "rank0.json", on_progress)
    watcher.start()
    try:
        with _sigterm_as_interrupt():
            result = trainer.fit()
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the run did not fail, it was stopped; say where it can resume from
        tracking.close_run(tracking_uri, run_id, "KILLED")
        _say_interrupted(existing_checkpoint(paths))
        raise
    except BaseException as error:
        tracking.close_run(tracking_uri, run_id, "FAILED")
        cause = worker_user_error(error)
        if cause is not None:  # a worker's one-line error (damaged data, starved rank), not Ray's wrapper
            raise cause from None
        raise
    finally:
        watcher.stop()
    tracking.close_run(tracking_uri, run_id, "FINISHED")
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")  # the loop always reports one at the end
    return TrainResult(run_name=paths.name, run_dir=paths.run_dir, checkpoint=result.checkpoint.path,
                       step=int((result.metrics or {}).get("step", config.steps)), mlflow_run_id=run_id,
                       tracking_uri=tracking_uri, metrics=dict(result.metrics or {}),
                       wall_s=time.perf_counter() - started)


def worker_user_error(error: BaseException) -> UserError | ModelError | None:
    """The first `UserError` or `ModelError` a training worker raised, unwrapped from Ray Train's exceptions."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (UserError, ModelError)):
            return current
        pending.extend(getattr(current, "worker_failures", {}).values())
        for name in ("_base_exc", "controller_failure", "__cause__", "__context__"):
            inner = getattr(current, name, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
    return None


def _absolute(path: str) -> str:
    """Workers may run in another working directory: hand them absolute local paths."""
    if "://" in path and not path.startswith("file://"):
        return path
    return str(Path(path.removeprefix("file://")).expanduser().resolve())


def _absolute_paths(config: TrainConfig) -> TrainConfig:
    updates: dict[str, Any] = {}
    if config.vae_checkpoint:
        updates["vae_checkpoint"] = _absolute(config.vae_checkpoint)
    if config.data.latents:
        updates["data"] = config.data.model_copy(update={"latents": _absolute(config.data.latents)})
    return config.model_copy(update=updates) if updates else config


def _run_id_of(checkpoint_folder: Path) -> str | None:
    import json

    return json.loads((checkpoint_folder / "state.json").read_text()).get("mlflow_run_id")


class _HeartbeatWatcher:
    """Polls rank 0's heartbeat file so the CLI can show a progress bar while `fit()` blocks."""

    def __init__(self, path: Path, callback: Callable[[dict[str, Any]], None] | None) -> None:
        self.path, self.callback = path, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.callback is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        import json

        while not self._stop.wait(0.5):
            try:
                self.callback(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                continue
