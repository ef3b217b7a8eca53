"""Exports: the weights `sample` and `eval` need, and nothing else, as safetensors + JSON.

An export folder holds

    config.json         format, stage, model name and overrides (attention variant included),
                        step, source checkpoint, MLflow run id, file names and their sha256
    model.safetensors   EMA weights of the trainable network merged over the model state (the
                        frozen text tower's weights are part of the model state)
    vae.safetensors     world exports: the frozen VAE, so the folder alone is enough to sample

Why: a training checkpoint carries optimizer moments (2x the weights in fp32) and is sharded per
rank; an export is the small, self-contained artefact to hand on, log to MLflow as a logged
model, and load on any machine without a process group. Nothing in it can run code.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.errors import UserError

FORMAT = "worldloom-export"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
VAE = "vae.safetensors"


@dataclass
class ExportResult:
    out: Path
    step: int
    stage: str
    model: str
    parameters: int
    bytes: int
    wall_s: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_export(path: Path) -> bool:
    config = path / "config.json"
    if not config.is_file() or config.stat().st_size > 1 << 20:
        return False
    try:
        return json.loads(config.read_bytes().decode("utf-8")).get("format") == FORMAT
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def attention_of(weights: dict[str, Any]) -> str:
    """The attention variant a set of world-model weights was trained with (V2 has `to_lambda`)."""
    return "diff_v2" if any(k.endswith("self_attn.to_lambda.weight") for k in weights) else "diff_v1"


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    # contiguous private copies: safetensors refuses views and tensors that share storage
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))


def write_export(out: str | Path, *, weights: dict[str, torch.Tensor], vae_weights: dict[str, torch.Tensor] | None,
                 state: dict[str, Any], source: str) -> Path:
    """Write an export folder atomically (a temporary sibling renamed into place)."""
    out = Path(out)
    if out.exists() and not is_export(out) and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not an export folder", hint="choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _save(weights, staging / WEIGHTS)
        files = {WEIGHTS: _sha256(staging / WEIGHTS)}
        if vae_weights is not None:
            _save(vae_weights, staging / VAE)
            files[VAE] = _sha256(staging / VAE)
        overrides = dict(state.get("model_overrides") or {})
        if state.get("stage") == "world":
            overrides["attention"] = attention_of(weights)
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "stage": state.get("stage"),
                  "model": state.get("model"), "model_overrides": overrides, "step": state.get("step"),
                  "mlflow_run_id": state.get("mlflow_run_id"), "source": source,
                  "weights": WEIGHTS, "vae": VAE if vae_weights is not None else None, "sha256": files,
                  "parameters": int(sum(v.numel() for v in weights.values()))}
        (staging / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def load_export(path: str | Path):
    """An export folder -> `LoadedCheckpoint` (config.json as its state)."""
    from safetensors.torch import load_file

    from training.checkpoint import LoadedCheckpoint

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path / 'config.json'}: not a readable export config ({type(error).__name__})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{path / 'config.json'}: field 'format' is not {FORMAT!r}")

    def read(name: str) -> dict[str, torch.Tensor]:
        file = path / name
        if name not in (WEIGHTS, VAE) or not file.is_file():
            raise UserError(f"{path / 'config.json'}: names {name!r}, which is not a file of this export")
        expected = (config.get("sha256") or {}).get(name)
        if expected and _sha256(file) != expected:
            raise UserError(f"{file}: sha256 differs from config.json", hint="the export was modified; re-export it")
        try:
            return load_file(str(file))
        except Exception as error:  # safetensors' own error types for a bad header
            raise UserError(f"{file}: not a readable safetensors file ({type(error).__name__})") from None

    weights = read(str(config.get("weights")))
    vae = read(str(config["vae"])) if config.get("vae") else None
    return LoadedCheckpoint(path, config, weights, vae)


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> ExportResult:
    """`worldloom export`: any checkpoint (or run folder, or export) -> an export folder."""
    from training.checkpoint import load_for_inference

    started = time.perf_counter()
    loaded = load_for_inference(checkpoint)
    if Path(out).resolve() == loaded.path.resolve():
        raise UserError(f"--out {out}: is the source itself", hint="choose another folder")
    write_export(out, weights=loaded.weights, vae_weights=loaded.vae_weights, state=loaded.state,
                 source=str(loaded.path))
    size = sum(p.stat().st_size for p in Path(out).iterdir())
    return ExportResult(out=Path(out), step=int(loaded.state.get("step") or 0), stage=str(loaded.state.get("stage")),
                        model=str(loaded.state.get("model")),
                        parameters=int(sum(v.numel() for v in loaded.weights.values())), bytes=size,
                        wall_s=time.perf_counter() - started)


def gather_live(model: torch.nn.Module, ema: Any) -> dict[str, torch.Tensor]:
    """Full EMA weights merged over the full model state, gathered from a live (possibly sharded)
    model. Collective: every rank calls it; rank 0 uses the result. Used once, for the final export."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from training.checkpoint import NET_PREFIX

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    weights = {k.removeprefix(NET_PREFIX): v for k, v in full.items() if k.startswith(NET_PREFIX)}
    weights.update(ema.full_state()["shadow"])
    return weights
