"""Typed training configuration, loaded from YAML.

One `TrainConfig` describes a whole run: which stage (`vae` trains the autoencoder, `world`
trains the DiT on latents of a frozen autoencoder), which named model config, where the data
comes from and how it is mixed, the optimiser and schedule, checkpointing, MLflow and scaling.
The resolved config (after CLI overrides) is what rank 0 logs to MLflow, so a run can be
reproduced from its MLflow params alone.

User mistakes raise `contract.errors.UserError` with one line naming the file, the field and
the fix (pydantic's multi-line reports are folded into that line).
"""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.errors import UserError
from contract.packaged import closest_name, find_packaged, packaged_files


class _Strict(BaseModel):
    """Unknown keys are typos: reject them instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSource(_Strict):
    """One shard source: a dataset folder (with shards/*.tar), a tar file, or a glob/brace URL."""

    path: str
    weight: float = Field(1.0, gt=0, description="relative mixture weight; sources are sampled in proportion")


class DataConfig(_Strict):
    sources: list[DataSource] = Field(default_factory=list, description="empty: the CLI's --data gives them")
    shuffle_buffer: int = Field(32, ge=1, description="samples held per reader for shuffling")
    loader_workers: int = Field(0, ge=0, description="torch DataLoader processes per training worker")
    frames: int | None = Field(None, ge=1, description="window length; default: the model config's")
    fps: float | None = Field(None, gt=0, description="window frame rate; default: the model config's")
    resolution: tuple[int, int] | None = Field(None, description="(height, width); default: the model config's")
    latents: str | None = Field(None, description="shards written by `worldloom encode` (world stage)")
    latent_statistics_batches: int = Field(
        16, ge=0, description="world stage, fresh runs: batches read first to measure the latents' per-channel "
                              "mean and std, which the model normalises with (saved with its weights); 0: identity")
    on_damaged: Literal["skip", "stop"] = Field(
        "skip", description="a damaged shard or sample (sha256 mismatch, truncated tar): skip it with a warning "
                            "(counted in data_skipped_samples) or stop with one line naming it")


class OptimConfig(_Strict):
    lr: float = Field(3e-4, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (weight matrices only)")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up from 0 to lr")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")


class CheckpointSettings(_Strict):
    every: int = Field(50, ge=1, description="report a checkpoint every N steps (and at the end)")
    keep: int = Field(3, ge=1, description="checkpoints kept in storage")


class MlflowConfig(_Strict):
    tracking_uri: str | None = Field(
        None, description="None: the project store ($MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)"
    )
    experiment: str = Field("worldloom", description="MLflow experiment name")
    sample_every: int = Field(0, ge=0, description="log a sample rollout (mp4 + GIF) every N steps; 0: at the end only")
    sample_frames: int = Field(9, ge=1, description="video frames in a logged world rollout (rounded to 1 + tc*k)")
    sample_steps: int = Field(4, ge=1, description="flow-matching steps per chunk for logged world rollouts")
    log_every: int = Field(1, ge=1, description="log metrics every N steps")
    log_system_metrics: bool = Field(True, description="sample CPU/memory/GPU into the run")


class ScalingSettings(_Strict):
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one process each)")
    gpus_per_worker: float = Field(0, ge=0, description="0: CPU training")
    cpus_per_worker: float = Field(1, gt=0, description="logical CPUs Ray reserves per worker")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="auto: FSDP2 when on CUDA and the model is large, else DDP"
    )
    max_failures: int = Field(2, ge=-1, description="worker-failure restarts from the last checkpoint (-1: unlimited)")


class TrainConfig(_Strict):
    stage: Literal["vae", "world"] = Field(description="vae: the video autoencoder; world: the DiT on its latents")
    model: str = Field(description="named model config, e.g. tiny (`worldloom model info`)")
    steps: int = Field(ge=1, description="optimizer steps in total")
    batch_size: int = Field(2, ge=1, description="clips per worker per step")
    seed: int = Field(0, description="seeds weights, data order and sampling")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="exponential moving average of the weights (what sampling uses)")
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    storage_path: str = Field("runs/train", description="local folder, shared filesystem path or s3://... URI")
    name: str | None = Field(None, description="run name; reusing name + storage_path resumes")
    vae_checkpoint: str | None = Field(None, description="world stage: checkpoint of the trained VAE")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value.startswith(".")):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return value

    @model_validator(mode="after")
    def _world_needs_a_vae(self) -> TrainConfig:
        if self.stage == "world" and self.vae_checkpoint is None and self.data.latents is None:
            raise ValueError("stage world needs vae_checkpoint (a trained VAE) or data.latents (encoded shards)")
        return self

    def run_name(self) -> str:
        """The Ray Train run name: explicit, or `<stage>-<model>-<hash of the config>`."""
        if self.name:
            return self.name
        return f"{self.stage}-{self.model}-{self.digest()[:8]}"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()

    def flat(self) -> dict[str, str]:
        """Dotted key -> value, for MLflow params (which are flat strings)."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, list) and tree and all(isinstance(item, dict) for item in tree):
        out = {}
        for index, item in enumerate(tree):
            out.update(_flatten(item, f"{prefix}{index}."))
        return out
    return {prefix.rstrip("."): json.dumps(tree) if isinstance(tree, (list, dict)) else str(tree)}


def _one_line(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: field '{field}': {message}{more}"


def parse_config(data: dict[str, Any], source: str = "<config>") -> TrainConfig:
    """Validate a config mapping; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: the top level must be a mapping of fields (stage, model, steps, ...)")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(_one_line(error, source), hint="see docs/training.md for the fields") from None


def packaged_configs() -> dict[str, Path]:
    """Configs shipped inside the package (training/configs/*.yaml), by name: usable from any directory."""
    return packaged_files("training", "configs")


def find_config(name_or_path: str | Path) -> Path:
    """A YAML file path, or the name of a packaged config (`tiny_vae`, `tiny_world`, ...)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    packaged = packaged_configs()
    found = find_packaged(path, packaged, "training/configs")
    if found is not None:
        return found
    close = closest_name(path, packaged)
    hint = f"did you mean `{close}`?" if close else (
        f"pass a YAML file or a packaged config name: {', '.join(packaged) or '(none found)'}")
    raise UserError(f"{name_or_path}: config file not found", hint=hint)


def load_train_config(path: str | Path) -> TrainConfig:
    """A training config from a YAML file or a packaged config name, validated (errors: one line)."""
    path = find_config(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    return parse_config(data, str(path))


def with_overrides(config: TrainConfig, source: str = "<config>", **overrides: Any) -> TrainConfig:
    """Apply dotted-key overrides (e.g. {"scaling.num_workers": 2}); None values are skipped."""
    data = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is not None:
            set_dotted(data, dotted, value, source)
    return parse_config(data, source)


def set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    """`data["optim"]["lr"] = value` for "optim.lr"; an unknown key is one line with a did-you-mean."""
    node: Any = data
    walked: list[str] = []
    for position, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            where = ".".join(walked) or "the top level"
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"did you mean `{'.'.join([*walked, close[0]])}`?" if close else (
                f"fields of {where}: {', '.join(known)}" if known else f"{where} has no fields")
            raise UserError(f"{source} {dotted}: no field '{part}' in {where}", hint=hint)
        if position == dotted.count("."):
            node[part] = value
            return
        node, walked = node[part], [*walked, part]


def parse_set_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items -> {dotted key: value}; values are YAML (`1e-4`, `[64, 64]`, `null`, `true`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set {item}: expected KEY=VALUE with a dotted KEY", hint="e.g. --set optim.lr=1e-4")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, str):  # PyYAML reads 1e-4 as text (YAML 1.1); the user meant a number
            try:
                value = int(value) if value.lstrip("+-").isdigit() else float(value)
            except ValueError:
                pass
        out[key] = value
    return out


def parse_data_arg(text: str) -> DataSource:
    """`PATH` or `PATH:WEIGHT` (the weight is a number after the last colon)."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return DataSource(path=head, weight=float(tail))
        except ValueError:
            pass
    return DataSource(path=text)
