"""Read a user's weights file without unpickling it: safetensors only.

`torch.load` is pickle, even with `weights_only=True` (a restricted unpickler is still an
unpickler, with its own history of escapes). worldloom's rule is that nothing unpickles a file a
user points it at, so every user weights path (text tower, aesthetic head, CLIP, CoCa) goes
through `load_state_dict` here. The format is checked by content, not by suffix: a `.pt` renamed
`.safetensors` is refused before any parser sees it.

A trusted pickle checkpoint is converted once, by its owner, with `CONVERT_HINT`.

Imports only torch, safetensors and the standard library, so model/ and pipeline/ can share it;
callers turn `WeightsFileError` into their user-facing error (`model.errors.ModelError`,
`contract.errors.UserError`) naming their config field.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

# The header is JSON describing the tensors; 100 MB of it is already absurd (safetensors' own cap).
MAX_HEADER_BYTES = 100_000_000

CONVERT_HINT = (
    "convert a checkpoint you trust once with: python -c \"import torch, safetensors.torch as s; "
    "sd = torch.load('in.pt', weights_only=True); sd = sd.get('state_dict', sd); "
    "s.save_file({k: v.contiguous() for k, v in sd.items()}, 'out.safetensors')\""
)


class WeightsFileError(ValueError):
    """A weights file that cannot be used; `message` says what, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str = CONVERT_HINT) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}")


def _kind_of(head: bytes) -> str:
    """A guess at what a non-safetensors file is, for the message."""
    if head.startswith(b"PK\x03\x04"):
        return "a torch.save zip (pickle) file"
    if head[:1] == b"\x80":
        return "a pickle file"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy file"
    return "not a safetensors file"


def check_safetensors(path: str | Path) -> Path:
    """`path` as a Path if its bytes are a safetensors file (8-byte little-endian header length,
    then a JSON object that fits in the file); else WeightsFileError. Reads only the header."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: file not found", hint="give a local .safetensors file")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise WeightsFileError(f"{path}: {_kind_of(head)} ({size} bytes); only .safetensors weights are read")
        (length,) = struct.unpack("<Q", head)
        if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
            raise WeightsFileError(f"{path}: {_kind_of(head)}; only .safetensors weights are read "
                                   f"(worldloom never unpickles a user's file)")
        header = handle.read(length)
    try:
        document = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict):
        raise WeightsFileError(f"{path}: {_kind_of(head)} (no safetensors JSON header); only .safetensors weights "
                               f"are read (worldloom never unpickles a user's file)")
    return path


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU, keys with a DataParallel `module.` prefix
    stripped. Never calls pickle; anything else is refused with the one-line conversion."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = check_safetensors(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise WeightsFileError(f"{path}: unreadable safetensors file ({' '.join(str(error).split())})",
                               hint="re-export it with safetensors.torch.save_file") from None
    return {key.removeprefix("module."): value for key, value in state.items()}


def find_in_folder(folder: str | Path) -> Path:
    """The one safetensors weights file in an open_clip style folder (`local-dir:<folder>`).
    Preferred names first; pickle files (`*.bin`, `*.pth`, `*.pt`) are never chosen."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsFileError(f"{folder}: folder not found", hint="give a local folder holding a .safetensors file")
    preferred = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "model.safetensors")
    for name in preferred:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    if found:
        raise WeightsFileError(f"{folder}: {len(found)} .safetensors files and none named {preferred[0]}",
                               hint="point at the file itself instead of the folder")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pth", ".pt", ".ckpt"))
    what = f"only pickle files ({', '.join(pickles[:3])})" if pickles else "no .safetensors file"
    raise WeightsFileError(f"{folder}: {what}; only .safetensors weights are read")
