"""Deterministic encoders for sample members.

`numpy.savez_compressed` stamps the current time into its zip entries, so two runs would
differ in bytes; `encode_npz` writes the same format with a fixed timestamp instead.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_npz(**arrays: np.ndarray) -> bytes:
    """A `.npz` (zip of `.npy`, deflate) readable by `np.load`, byte-identical across runs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, encode_npy(arrays[name]), compresslevel=6)
    return buffer.getvalue()


def encode_json(value: Any) -> bytes:
    """Sorted keys, no NaN (becomes null), UTF-8: the same dict gives the same bytes."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def decode_member(extension: str, data: bytes) -> Any:
    """Decode by the member's extension (the part of the tar name after the key's dot)."""
    if extension.endswith("json"):
        return json.loads(data)
    if extension.endswith("npy"):
        return np.load(io.BytesIO(data), allow_pickle=False)
    if extension.endswith("npz"):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    if extension in ("txt", "caption"):
        return data.decode()
    return data
