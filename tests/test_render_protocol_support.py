"""Support for the render-protocol tests (no tests here): a small deterministic stand-in backend.

`GradientBackend` is a named stand-in for a renderer, used where the test is about the
transport (chunking, heartbeats, cancellation, errors) and a real world build would only add
seconds. The acceptance tests in test_render_protocol_e2e.py use the real procedural backend
in a real server process.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from contract.clip import ResolvedClip
from contract.errors import UserError
from contract.manifest import clip_sha256, load_manifest, resolve_clip
from unreal_bridge.backend import RenderedFrame
from unreal_bridge.open_request import OpenedClip
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.server import RenderServer, RenderServicer, ServerConfig


def standin_clip(width: int = 32, height: int = 24, frames: int = 6, seed: int = 7, passes=("rgb", "depth", "segmentation")) -> dict:
    """A real resolved clip (an empty world, a static camera) of the given size; only its output
    size, passes and world seed matter to the stand-in backend."""
    manifest = f"""
version: 1
name: standin
seed: {seed}
output: {{width: {width}, height: {height}, fps: 10, frames: {frames}}}
passes: [{", ".join(passes)}]
scenes:
  - name: standin
    world: {{generator: empty}}
    camera: {{rig: fixed}}
    motion: {{policy: static}}
"""
    return resolve_clip(load_manifest(manifest), "standin", 0)


def standin_resolver(request: pb.OpenSessionRequest) -> OpenedClip:
    """Accepts resolved clips only, parsed and hashed as the real resolver does."""
    if request.WhichOneof("source") != "resolved_clip_json":
        raise UserError("<manifest_yaml>: the stand-in resolver takes resolved clips only")
    document = json.loads(request.resolved_clip_json)
    clip = ResolvedClip.parse(document, source="resolved_clip_json")
    document = dict(document, sha256=clip_sha256(document))
    return OpenedClip(document, ResolvedClip.parse(document, source="resolved_clip_json"))


class GradientBackend:
    """Stand-in renderer: frame i is a gradient shifted by i and the seed; camera moves +z."""

    name = "standin"
    engine_version = "gradient 1"
    passes = ("rgb", "depth", "segmentation")
    capabilities = ("deterministic",)

    def __init__(self, frame_delay: float = 0.0, warmup_delay: float = 0.0) -> None:
        self.frame_delay = frame_delay
        self.warmup_delay = warmup_delay
        self.clip: ResolvedClip | None = None
        self.frames_started = 0
        self.frames_finished = 0
        self.lock = threading.Lock()

    def open(self, clip: ResolvedClip) -> None:
        self.clip = ResolvedClip.parse(clip)

    def frames(self, start: int, end: int) -> Iterator[RenderedFrame]:
        assert self.clip is not None
        out = self.clip.output
        width, height, seed = out.width, out.height, self.clip.seeds["world"] % 251
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
                sim_time=index / out.fps,
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
