"""How a frame travels: the pass layout (dtype, channels) and the header + chunk events.

The one definition of the wire format's pass layout (render.proto, docs/render-protocol.md):
backends produce exactly these dtypes, the server sends them little-endian in C order as a
`FrameHeader` followed by `Chunk`s, and the client checks each header against the same table
before it reassembles a pass.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from unreal_bridge.backend import RenderedFrame
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb

#: pass -> (dtype, channels) as the protocol defines them.
PASS_LAYOUT: dict[str, tuple[np.dtype, int]] = {
    "rgb": (np.dtype(np.uint8), 3),  # (H, W, 3)
    "depth": (np.dtype(np.float32), 1),  # (H, W) planar z, metres, never inf
    "segmentation": (np.dtype(np.int32), 1),  # (H, W), 0 = sky/background
}
#: pass -> the dtype a backend must produce for it.
PASS_DTYPES: dict[str, np.dtype] = {name: dtype for name, (dtype, _) in PASS_LAYOUT.items()}
#: The only payload encoding of protocol v1.
RAW_ENCODING = "raw"


def _wire_array(name: str, array: np.ndarray) -> np.ndarray:
    """The pass as the contract says it travels: its dtype, little-endian, C order."""
    expected = PASS_DTYPES.get(name)
    if expected is None:
        raise RuntimeError(f"backend produced unknown pass {name!r}; known passes: {', '.join(PASS_DTYPES)}")
    if array.dtype != expected:
        raise RuntimeError(f"backend produced pass {name!r} with dtype {array.dtype}; the protocol needs {expected}")
    if name == "rgb" and (array.ndim != 3 or array.shape[2] != 3):
        raise RuntimeError(f"backend produced rgb with shape {array.shape}; the protocol needs (H, W, 3)")
    if name != "rgb" and array.ndim != 2:
        raise RuntimeError(f"backend produced {name} with shape {array.shape}; the protocol needs (H, W)")
    return np.ascontiguousarray(array, dtype=expected.newbyteorder("<"))


def encode_frame_events(frame: RenderedFrame, passes: list[str], max_chunk_bytes: int) -> Iterator[pb.RenderEvent]:
    """Header then chunks, for every requested pass of one frame."""
    k = np.asarray(frame.intrinsics, dtype=np.float64)
    for name in passes:
        if name not in frame.passes:
            raise RuntimeError(f"backend did not produce pass {name!r} for frame {frame.index}")
        array = _wire_array(name, frame.passes[name])
        payload = array.tobytes()
        height, width = array.shape[:2]
        header = pb.FrameHeader(
            frame_index=frame.index,
            sim_time=float(frame.sim_time),
            width=width,
            height=height,
            channels=array.shape[2] if array.ndim == 3 else 1,
            dtype=array.dtype.name,
            encoding=RAW_ENCODING,
            byte_size=len(payload),
            sha256=hashlib.sha256(payload).hexdigest(),
            intrinsics=pb.Intrinsics(fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2], width=width, height=height),
            camera_to_world=np.asarray(frame.camera_to_world, dtype=np.float64).reshape(16).tolist(),
            action=np.asarray(frame.action, dtype=np.float32).reshape(-1).tolist(),
            depth_kind="planar_z_metres" if name == "depth" else "",
        )
        setattr(header, "pass", name)  # `pass` is a Python keyword
        yield pb.RenderEvent(header=header)
        view = memoryview(payload)
        for offset in range(0, len(payload), max_chunk_bytes):
            chunk = pb.Chunk(frame_index=frame.index, offset=offset, data=bytes(view[offset : offset + max_chunk_bytes]))
            setattr(chunk, "pass", name)
            yield pb.RenderEvent(chunk=chunk)
