"""Support for the render-protocol tests (no tests here): a small deterministic stand-in backend.

`GradientBackend` is a named stand-in for a renderer, used where the test is about the
transport (chunking, heartbeats, cancellation, errors) and a real world build would only add
seconds. The acceptance tests in test_render_protocol_e2e.py use the real procedural backend
in a real server process.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from contract.errors import UserError
from unreal_bridge.backend import RenderedFrame
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.server import RenderServer, RenderServicer, ServerConfig


def standin_clip(width: int = 32, height: int = 24, frames: int = 6, seed: int = 7, passes=("rgb", "depth", "segmentation")) -> dict:
    clip = {
        "schema": "worldloom.resolved_clip/1",
        "key": f"standin_{seed}",
        "seeds": {"render": seed},
        "output": {"width": width, "height": height, "fps": 10, "frames": frames},
        "passes": list(passes),
    }
    clip["sha256"] = standin_sha256(clip)
    return clip


def standin_sha256(clip: dict) -> str:
    body = {key: value for key, value in clip.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def standin_resolver(request: pb.OpenSessionRequest) -> dict:
    """Accepts resolved clips only; 'bad' fields raise the UserError a real resolver would."""
    if request.WhichOneof("source") != "resolved_clip_json":
        raise UserError("<manifest_yaml>: the stand-in resolver takes resolved clips only")
    clip = json.loads(request.resolved_clip_json)
    if clip["output"]["width"] <= 0:
        raise UserError(f"<manifest_yaml> field 'output.width' is {clip['output']['width']}; it must be positive")
    return dict(clip, sha256=standin_sha256(clip))


class GradientBackend:
    """Stand-in renderer: frame i is a gradient shifted by i and the seed; camera moves +z."""

    name = "standin"
    engine_version = "gradient 1"
    passes = ("rgb", "depth", "segmentation")
    capabilities = ("deterministic",)

    def __init__(self, frame_delay: float = 0.0, warmup_delay: float = 0.0) -> None:
        self.frame_delay = frame_delay
        self.warmup_delay = warmup_delay
        self.clip: dict | None = None
        self.frames_started = 0
        self.frames_finished = 0
        self.lock = threading.Lock()

    def open(self, clip: dict) -> None:
        self.clip = clip

    def frames(self, start: int, end: int) -> Iterator[RenderedFrame]:
        assert self.clip is not None
        out = self.clip["output"]
        width, height, seed = out["width"], out["height"], self.clip["seeds"]["render"]
        time.sleep(self.warmup_delay)
        ys, xs = np.mgrid[0:height, 0:width]
        for index in range(start, end):
            with self.lock:
                self.frames_started += 1
            time.sleep(self.frame_delay)
            rgb = np.stack([(xs + index) % 256, (ys + seed) % 256, (xs * ys + index * seed) % 256], axis=-1).astype(np.uint8)
            depth = (1.0 + xs / width + index).astype(np.float32)
            segmentation = ((xs // 8 + ys // 8 + index) % 5).astype(np.int32)
            pose = np.eye(4)
            pose[2, 3] = 0.1 * (index + 1)
            k = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
            action = np.zeros(8, dtype=np.float32)
            action[0] = 1.0
            with self.lock:
                self.frames_finished += 1
            yield RenderedFrame(
                index=index,
                sim_time=index / out["fps"],
                camera_to_world=pose,
                intrinsics=k,
                action=action,
                passes={"rgb": rgb, "depth": depth, "segmentation": segmentation},
            )

    def close(self) -> None:
        self.clip = None


@contextmanager
def inprocess_server(backend=None, servicer_class=RenderServicer, attach: bool = True, **config) -> Iterator[RenderServer]:
    """A real gRPC server on loopback in this process, with the stand-in resolver."""
    cfg = ServerConfig(host="127.0.0.1", port=0, **config)
    server = RenderServer(cfg, servicer=servicer_class(cfg, standin_resolver))
    server.start()
    if attach:
        server.attach_backend(backend or GradientBackend())
    try:
        yield server
    finally:
        server.stop(grace=0)
