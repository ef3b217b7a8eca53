"""Sub-seeds: one independent random stream per (scene, clip, subsystem), and per randomised field.

Every draw in a resolved clip comes from a stream named by what it is for, never from a shared
generator consumed in order. So adding a weather randomiser cannot shift the camera path, and
adding a second weather randomiser cannot shift the first one.
"""
from __future__ import annotations

import hashlib

import numpy as np

from contract.manifest.schema import SUBSYSTEMS


def _seed_from_text(text: str) -> int:
    """31-bit seed from a sha256: fits int32 engine seeds (Unreal FRandomStream) and numpy."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFF_FFFF


def derive_seed(root_seed: int, scene: str, clip_index: int, subsystem: str) -> int:
    """`sha256(f"{root_seed}/{scene}/{clip_index}/{subsystem}")`, as in docs/architecture.md."""
    if subsystem not in SUBSYSTEMS:
        raise ValueError(f"unknown subsystem {subsystem!r}; expected one of {SUBSYSTEMS}")
    return _seed_from_text(f"{root_seed}/{scene}/{clip_index}/{subsystem}")


def clip_seeds(root_seed: int, scene: str, clip_index: int) -> dict[str, int]:
    return {name: derive_seed(root_seed, scene, clip_index, name) for name in SUBSYSTEMS}


def field_seed(subsystem_seed: int, field_path: str) -> int:
    """The stream for one randomised field: `sha256(f"{subsystem_seed}/{field_path}")`."""
    return _seed_from_text(f"{subsystem_seed}/{field_path}")


def rng(seed: int) -> np.random.Generator:
    """numpy PCG64 generator; its streams are stable across numpy versions for a given seed."""
    return np.random.default_rng(seed)
