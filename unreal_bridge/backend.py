"""The contract every renderer implements (see docs/architecture.md, "Backend interface").

The gRPC servicer (`unreal_bridge.server`) is generic over a `RenderBackend`: the procedural
PyBullet renderer and the Unreal Engine bridge both plug in here, so the transport, resume and
hashing logic is written once.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from contract.clip import ResolvedClip

__all__ = ["RenderedFrame", "RenderBackend"]

@dataclass
class RenderedFrame:
    """One simulated tick: the pixels and the camera state captured in the same tick.

    Pose and pixels travel together because reading the pose after the capture is the
    classic source of off-by-one frames (AirSim #637, #1200).
    """

    index: int
    sim_time: float
    camera_to_world: np.ndarray  # (4, 4) float64, OpenCV axes (x right, y down, z forward), metres
    intrinsics: np.ndarray  # (3, 3) float64, pixels of the output resolution
    action: np.ndarray  # (8,) float32, the action applied to reach this frame
    passes: dict[str, np.ndarray] = field(default_factory=dict)
    # rgb (H,W,3) uint8, depth (H,W) float32 metres, segmentation (H,W) int32: exactly unreal_bridge.wire.PASS_LAYOUT


@runtime_checkable
class RenderBackend(Protocol):
    """A renderer that turns a ResolvedClip into frames.

    `frames(start, end)` yields frames `start..end-1`; the content of frame `i` never depends
    on `start` (a backend may re-simulate from frame 0 to get there), which is what makes
    resume-after-crash produce the same bytes as an uninterrupted render.
    """

    name: str  # "procedural" | "unreal"
    engine_version: str
    passes: tuple[str, ...]
    capabilities: tuple[str, ...]

    def open(self, clip: ResolvedClip) -> None:
        """Build or load the world for a resolved clip (parsed once by the server; a backend
        called in process may also be given the clip's JSON document: `ResolvedClip.parse`)."""
        ...

    def frames(self, start: int, end: int) -> Iterator[RenderedFrame]:
        """Yield frames [start, end). Backends may accept an optional keyword `passes=None`."""
        ...

    def close(self) -> None:
        """Release the world and any engine resources."""
        ...
