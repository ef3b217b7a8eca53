"""Checkpoints: sharded, reshardable, and free of pickle, reported through Ray Train.

A checkpoint directory holds

    state.json              rank 0: format, step, data position, run metadata, LR scheduler state,
                            optimizer hyper-parameters (param_groups), EMA counters, world size
    rng_rank{r}.json        rank r: RNG states (python, numpy, torch, the loss-noise generator)
    shards/*.safetensors    every rank's shard of the tensors, written by torch.distributed.checkpoint
                            through its HuggingFace storage writer: keys `model.<fqn>` (the trained
                            network), `ema.<name>` (EMA weights), `optim.<fqn>.<exp_avg|exp_avg_sq|step>`
                            (AdamW moments) and, for world checkpoints, `vae.<name>` (the frozen VAE)

Why this shape:
- No gather. Every rank writes only its own shard (FSDP2's DTensor shards, or for DDP's replicated
  tensors the share DCP's de-duplication assigns to it), so 2.6b never funnels ~30 GB through one
  process. Ray Train merges the per-rank folders into one in storage (file names carry the rank).
- Resharding. Each safetensors file carries the offsets of its chunks in its JSON header, so a
  checkpoint saved on N workers loads on M: `dcp.load` plans the reads for whatever sharding the
  loading model has (DDP, FSDP2, one process).
- Nothing runs code on load. DCP's default `FileSystemReader` unpickles its `.metadata` file; the
  HuggingFace reader rebuilds the metadata from the safetensors headers (JSON) instead, and
  safetensors itself parses only a JSON header and raw bytes. Scalars and RNG states are JSON.
  A file that fails to parse, or a pickle-era file (`*.pt`, `.metadata`, ...), is refused with one
  line; nothing calls `torch.load` or `pickle` on a user's file.

Inference (`load_for_inference`) needs no process group: it assembles full tensors from the shard
headers' offsets. `training/export.py` turns any checkpoint into a small safetensors export.
"""
from __future__ import annotations

import base64
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from contract.errors import UserError

FORMAT = "worldloom-checkpoint"
FORMAT_VERSION = 2
NET_PREFIX = "net."  # the trained network is `TrainStep.net`; EMA and exports store it without the prefix
SHARDS = "shards"
SHARDING_KEY = "DCP_SHARDING_INFO"  # the JSON entry DCP writes into each safetensors header
# files of the torch.save era (or DCP's pickled metadata): never opened, always refused
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".metadata", ".distcp")
MAX_JSON_BYTES = 64 * 2**20  # state.json / rng files are kilobytes; bound what a hostile file costs


@dataclass
class TrainingState:
    step: int
    data_position: dict[str, int]
    mlflow_run_id: str | None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


# --------------------------------------------------------------------------- JSON-safe RNG states


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG the loop draws from, as plain JSON (byte states in base64)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": _b64(torch.get_rng_state()), "generator": _b64(generator.get_state())}


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(_unb64(state["torch"]))
    generator.set_state(_unb64(state["generator"]))


# --------------------------------------------------------------------------- safety checks


def _read_json(path: Path, what: str) -> Any:
    """A JSON file of a checkpoint, or one UserError line (never anything but JSON parsing)."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {what} is {path.stat().st_size} bytes, more than a checkpoint's JSON can be",
                            hint="the checkpoint is damaged or not a worldloom checkpoint")
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing ({what})", hint="point at a complete worldloom checkpoint") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: {what} is not JSON ({type(error).__name__}); refusing to load it",
                        hint="checkpoints hold only JSON and safetensors; re-create this one from training") from None


def check_files(folder: Path) -> None:
    """Refuse a checkpoint holding pickle-era files before anything is read."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name.lower().endswith(PICKLE_SUFFIXES):
            raise UserError(f"{path}: a pickle-format file in a checkpoint; worldloom never unpickles checkpoint files",
                            hint="checkpoints hold only JSON and safetensors: re-train, or remove the file if it is stray")


def read_state(folder: Path) -> dict[str, Any]:
    """state.json of a checkpoint, validated enough that later reads cannot go astray."""
    check_files(folder)
    state = _read_json(folder / "state.json", "state.json")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{folder / 'state.json'}: field 'format' is not {FORMAT!r} (an older or foreign checkpoint)",
                        hint="checkpoints from before the pickle-free format cannot be loaded; re-train")
    if not isinstance(state.get("step"), int) or not isinstance(state.get("data_position", {}), dict):
        raise UserError(f"{folder / 'state.json'}: fields 'step'/'data_position' are malformed")
    return state


def _safetensors_files(folder: Path) -> list[Path]:
    shards = folder / SHARDS
    files = sorted(shards.glob("*.safetensors")) if shards.is_dir() else []
    if not files:
        raise UserError(f"{shards}: no .safetensors shards", hint="point at a complete worldloom checkpoint")
    return files


def _unreadable(path: Path, error: Exception) -> UserError:
    return UserError(f"{path}: not a readable safetensors shard ({type(error).__name__}: {str(error)[:120]})",
                     hint="the checkpoint is damaged or was tampered with; use another checkpoint")


def _chunk_index(files: list[Path]) -> dict[str, list[tuple[Path, list[int], list[int]]]]:
    """key -> [(file, offsets, shape)] from the safetensors headers (JSON; no tensor is read)."""
    from safetensors import safe_open

    index: dict[str, list[tuple[Path, list[int], list[int]]]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
                sharding = json.loads(header[SHARDING_KEY]) if SHARDING_KEY in header else {}
                for key in handle.keys():
                    shape = list(handle.get_slice(key).get_shape())
                    offsets = [int(o) for o in sharding.get(key, {}).get("saved_offsets", [0] * len(shape))]
                    if len(offsets) != len(shape) or min(offsets, default=0) < 0:
                        raise ValueError(f"bad offsets for {key}")
                    index.setdefault(key, []).append((path, offsets, shape))
        except UserError:
            raise
        except Exception as error:  # safetensors raises its own error types for a bad header
            raise _unreadable(path, error) from None
    return index


def read_full_tensors(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    """All tensors under `prefix` (e.g. "ema.") assembled whole on the CPU, keys without the prefix.

    Memory is bounded by the files: a tensor is allocated only when its chunks cover it exactly.
    """
    from safetensors import safe_open

    files = _safetensors_files(folder)
    index = {k: v for k, v in _chunk_index(files).items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}
    handles: dict[Path, Any] = {}
    try:
        for key, chunks in index.items():
            dims = len(chunks[0][2])
            if any(len(shp) != dims for _, _, shp in chunks):
                raise _unreadable(chunks[0][0], ValueError(f"{key}: chunks of different rank"))
            size = [max(offs[d] + shp[d] for _, offs, shp in chunks) for d in range(dims)]
            covered = sum(int(np.prod(shp)) for _, _, shp in chunks)
            if covered != int(np.prod(size)):
                raise _unreadable(chunks[0][0], ValueError(f"{key}: shards do not tile the tensor"))
            full = None
            for path, offs, shp in chunks:
                if path not in handles:
                    handles[path] = safe_open(str(path), framework="pt").__enter__()
                part = handles[path].get_tensor(key)
                if full is None:
                    full = torch.empty(size, dtype=part.dtype)
                full[tuple(slice(o, o + s) for o, s in zip(offs, shp, strict=False))] = part
            out[key.removeprefix(prefix)] = full
    except UserError:
        raise
    except Exception as error:
        raise _unreadable(folder / SHARDS, error) from None
    finally:
        for handle in handles.values():
            handle.__exit__(None, None, None)
    return out


# --------------------------------------------------------------------------- training side


def _tensor_state(model: torch.nn.Module, ema: EMA, optimizer: torch.optim.Optimizer
                  ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(model state, optimizer state) in the loading model's own sharding, and the param groups."""
    model_state = get_model_state_dict(model)
    optimizer_state = get_optimizer_state_dict(model, optimizer)  # creates AdamW state if still empty
    return model_state, optimizer_state["state"], optimizer_state["param_groups"]


def save(directory: Path, *, step: int, model: torch.nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
         scheduler: Any, data_position: dict[str, int], generator: torch.Generator, rank: int,
         meta: dict[str, Any], vae_state: dict[str, Any] | None = None) -> None:
    """Write this rank's part of a checkpoint into `directory` (collective: call on every rank)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    model_state, optim_state, param_groups = _tensor_state(model, ema, optimizer)
    tensors: dict[str, Any] = {"model": model_state, "ema": dict(ema.shadow), "optim": optim_state}
    if vae_state is not None:
        tensors["vae"] = vae_state
    writer = HuggingFaceStorageWriter(str(directory / SHARDS), save_distributed=_distributed())
    dcp.save(tensors, storage_writer=writer)
    (directory / f"rng_rank{rank}.json").write_text(json.dumps(rng_state(generator)))
    if rank != 0:
        return
    world_size = torch.distributed.get_world_size() if _distributed() else 1
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "data_position": data_position,
             "scheduler": scheduler.state_dict(), "param_groups": param_groups,
             "ema": {"updates": ema.updates, "decay": ema.decay}, "has_vae": vae_state is not None,
             "world_size": world_size, **meta}
    (directory / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))


def restore(directory: Path, *, model: torch.nn.Module, ema: EMA, optimizer: torch.optim.Optimizer,
            scheduler: Any, generator: torch.Generator, rank: int) -> TrainingState:
    """Load a checkpoint written by `save` on any number of workers into this run's sharding."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    state = read_state(directory)
    _chunk_index(_safetensors_files(directory))  # every shard header parses, or one line
    model_state, optim_state, _ = _tensor_state(model, ema, optimizer)
    target = {"model": model_state, "ema": ema.shadow, "optim": optim_state}
    try:
        dcp.load(target, storage_reader=HuggingFaceStorageReader(str(directory / SHARDS)))
    except Exception as error:  # DCP wraps per-rank failures; the cause is a mismatched checkpoint
        raise UserError(f"{directory / SHARDS}: does not fit this model ({str(error).splitlines()[0][:200]})",
                        hint="resume with the config that wrote the checkpoint") from None
    set_model_state_dict(model, model_state)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in state["param_groups"]]
    set_optimizer_state_dict(model, optimizer, {"state": optim_state, "param_groups": groups})
    scheduler.load_state_dict(state["scheduler"])
    ema.updates = int(state["ema"]["updates"])
    rng_file = directory / f"rng_rank{rank}.json"
    if rng_file.exists():  # absent when the world size grew: that rank keeps its fresh seed
        set_rng_state(_read_json(rng_file, "RNG state"), generator)
    return TrainingState(step=int(state["step"]), data_position=state["data_position"],
                         mlflow_run_id=state.get("mlflow_run_id"))


def report(step: int, metrics: dict[str, float], *, before_report: Any = None, **save_kwargs: Any) -> None:
    """Save this rank's part to a temporary folder and report it to Ray Train (a barrier).

    `before_report(folder)` runs on every rank with its local folder, after the save. Ray copies
    the folders to `storage_path/<run>/checkpoint_<step>`; the temporary folder is removed afterwards.
    """
    import ray.train

    with tempfile.TemporaryDirectory(prefix="worldloom-ckpt-") as folder:
        directory = Path(folder)
        save(directory, step=step, **save_kwargs)
        if before_report is not None:
            before_report(directory)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=f"checkpoint_{step:08d}")


class EMA:
    """Exponential moving average of the trainable parameters, with a warm-up.

    The effective decay is min(decay, (1 + n) / (10 + n)) after n updates, so early EMA weights
    follow the model instead of staying near the random initialisation. Under FSDP2 the shadow
    tensors are DTensors sharded like their parameters, so checkpoints save them shard by shard.
    """

    def __init__(self, named_parameters: list[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.params = {name.removeprefix(NET_PREFIX): p for name, p in named_parameters}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, param in self.params.items():
            self.shadow[name].lerp_(param.detach(), 1 - decay)

    def full_state(self) -> dict[str, Any]:
        """Gathered CPU tensors (collective for FSDP2's DTensors)."""
        full = {}
        for name, value in self.shadow.items():
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            full[name] = value.detach().cpu()
        return {"updates": self.updates, "decay": self.decay, "shadow": full}


# --------------------------------------------------------------------------- inference side


@dataclass
class LoadedCheckpoint:
    path: Path
    state: dict[str, Any]         # state.json (checkpoint) or config.json (export)
    weights: dict[str, Any]       # EMA weights merged over the model state (or the raw model state)
    vae_weights: dict[str, Any] | None


def load_for_inference(path: str | Path, *, use_ema: bool = True) -> LoadedCheckpoint:
    """An export folder, a checkpoint folder, or a run folder (its latest checkpoint) -> weights
    for sampling, encoding and evaluation. No process group needed; nothing is unpickled."""
    from training import export

    path = Path(path)
    if export.is_export(path):
        return export.load_export(path)
    folder = latest_checkpoint(path)
    state = read_state(folder)
    weights = _strip(read_full_tensors(folder, "model."))
    if use_ema:
        weights.update(read_full_tensors(folder, "ema."))
    vae_weights = read_full_tensors(folder, "vae.") if state.get("has_vae") else None
    return LoadedCheckpoint(folder, state, weights, vae_weights)


def _strip(state: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix(NET_PREFIX): v for k, v in state.items() if k.startswith(NET_PREFIX)}


def latest_checkpoint(path: Path) -> Path:
    """`path` itself when it holds state.json (or is an export), else its newest `checkpoint_*` child."""
    from training import export

    if (path / "state.json").is_file() or export.is_export(path):
        return path
    candidates = sorted(p for p in path.glob("checkpoint_*") if (p / "state.json").is_file())
    if not candidates:
        raise UserError(f"{path}: not a worldloom checkpoint (no state.json) and no checkpoint_* folders inside",
                        hint="pass a folder like runs/train/<run>/checkpoint_00000040, its run folder, or an export")
    return candidates[-1]
