"""The Ray stages of generate: render -> process (encode, scores, caption) -> embed.

Ray Core actors, one pool per stage, each declaring its CPUs (see docs/generate.md for why
actors and not Ray Data). Data moves between stages as object refs: the driver never copies
frames; it only receives the finished, encoded sample. Every actor counts its busy seconds so
the run can report pipeline efficiency.
"""
from __future__ import annotations

import time
from typing import Any

import ray

from contract.clip import ResolvedClip
from pipeline.generate.process import RenderedPayload, encode_settings_for, middle_frames, process_clip


def _server_cpu(pid: int | None) -> tuple[int | None, float]:
    """(pid, user+system CPU seconds) of a render server process; (pid, 0.0) if it is gone."""
    if pid is None:
        return None, 0.0
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
        return pid, float(times.user + times.system)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return pid, 0.0


class _BusyClock:
    """Wall seconds spent inside stage calls, and CPU seconds actually burnt by them.

    Wall busy time over-counts on an oversubscribed machine (a call waiting for a core looks
    busy); CPU time is what efficiency is measured with."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> _BusyClock:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall0
        self.cpu += time.process_time() - self._cpu0


def _one_line(error: BaseException) -> str:
    text = getattr(error, "one_line", None)
    message = text() if callable(text) else str(error)
    return f"{type(error).__name__}: {' '.join(message.split())}"[:500]


class RenderStage:
    """One render endpoint. With no endpoint it owns a procedural server subprocess, which it
    restarts when it finds it dead (a crashed engine), so retried clips land on a live server."""

    def __init__(self, endpoint: str | None, *, idle_timeout: float, max_retries: int, connect_timeout: float,
                 passes: list[str] | None, auth_token: str | None = None) -> None:
        from unreal_bridge.client import RenderClient

        self.server = None
        if endpoint is None:
            from unreal_bridge.launch import ProceduralServer

            self.server = ProceduralServer().start()
            endpoint = self.server.address
        self.endpoint = endpoint
        self.passes = passes
        self.client = RenderClient(endpoint, auth_token=auth_token, idle_timeout=idle_timeout, max_retries=max_retries,
                                   connect_timeout=connect_timeout, initial_backoff=0.1, max_backoff=1.0)
        self.clock = _BusyClock()
        self.server_cpu_seconds = 0.0
        self.frames = 0
        self.restarts = 0

    def info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "server_pid": None if self.server is None else self.server.pid,
                "local": self.server is not None, "restarts": self.restarts}

    def render(self, key: str, clip: dict[str, Any]) -> tuple[dict[str, Any], RenderedPayload | None]:
        started = time.perf_counter()
        pid0, cpu0 = _server_cpu(self.server.pid if self.server else None)
        try:
            with self.clock:
                rendered = self.client.render_clip(clip, passes=self.passes)
        except Exception as error:  # any failure is one failed attempt of this clip
            restarted = self._revive()
            return {"ok": False, "error": _one_line(error), "endpoint": self.endpoint, "restarted": restarted}, None
        finally:
            pid1, cpu1 = _server_cpu(self.server.pid if self.server else None)
            self.server_cpu_seconds += cpu1 - cpu0 if pid1 == pid0 else cpu1
        seconds = time.perf_counter() - started
        self.frames += rendered.frame_count
        info = rendered.server_info
        payload = RenderedPayload(
            key=key,
            resolved_clip=rendered.resolved_clip,
            resolved_sha256=rendered.resolved_sha256,
            rgb=rendered.rgb,
            camera_to_world=rendered.camera_to_world,
            intrinsics=rendered.intrinsics,
            actions=rendered.actions,
            depth=rendered.depth,
            segmentation=rendered.segmentation,
            renderer={"backend": info.backend, "engine_version": info.engine_version,
                      "protocol_version": info.protocol_version},
            render_seconds=seconds,
        )
        status = {"ok": True, "frames": rendered.frame_count, "seconds": seconds, "endpoint": self.endpoint,
                  "reconnects": len(rendered.resumed_from)}
        return status, payload

    def _revive(self) -> bool:
        """Restart our own server if it died; remote endpoints are someone else's to restart."""
        if self.server is not None and not self.server.is_running():
            self.server.restart()
            self.restarts += 1
            return True
        return False

    def stats(self) -> dict[str, Any]:
        return {"busy_seconds": self.clock.wall, "cpu_seconds": self.clock.cpu + self.server_cpu_seconds,
                "frames": self.frames, "restarts": self.restarts}

    def shutdown(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()


class ProcessStage:
    """Encode H.264, compute scores, caption: CPU-bound numpy/libx264 work."""

    def __init__(self, crf: int | None, gop: int | None, preset: str, thresholds) -> None:
        self.crf, self.gop, self.preset, self.thresholds = crf, gop, preset, thresholds
        self.clock = _BusyClock()

    def process(self, payload: RenderedPayload):
        with self.clock:
            clip = ResolvedClip.parse(payload.resolved_clip, source=f"resolved clip of {payload.key}")  # once, for both
            settings = encode_settings_for(clip, self.crf, self.gop, self.preset)
            return process_clip(payload, settings, self.thresholds, clip)

    def stats(self) -> dict[str, Any]:
        return {"busy_seconds": self.clock.wall, "cpu_seconds": self.clock.cpu}


class EmbedStage:
    """CLIP image embedding of the clip and caption-frame similarity (model loaded once)."""

    def __init__(self, model: str, weights: str | None, frames: int, seed: int, text_similarity: bool) -> None:
        from pipeline.embed import ClipEmbedder, EmbedSettings

        self.embedder = ClipEmbedder(EmbedSettings(model=model, weights=weights, frames=frames, seed=seed))
        self.text_similarity = text_similarity
        self.clock = _BusyClock()

    def describe(self) -> dict[str, Any]:
        return self.embedder.describe()

    def embed(self, payload: RenderedPayload, processed) -> dict[str, Any]:
        with self.clock:
            vector = self.embedder.embed_clip(middle_frames(payload.rgb, self.embedder.settings.frames))
            result: dict[str, Any] = {"embedding": vector}
            if self.text_similarity:
                result["clip_text_similarity"] = self.embedder.text_similarity(vector, processed.caption)
            return result

    def stats(self) -> dict[str, Any]:
        return {"busy_seconds": self.clock.wall, "cpu_seconds": self.clock.cpu}


def remote_render(cpus: float):
    # max_restarts: if the actor process itself dies, Ray recreates it (and its server)
    return ray.remote(num_cpus=cpus, max_restarts=3, max_task_retries=0)(RenderStage)


def remote_process(cpus: float):
    return ray.remote(num_cpus=cpus, max_restarts=3)(ProcessStage)


def remote_embed(cpus: float):
    return ray.remote(num_cpus=cpus, max_restarts=3)(EmbedStage)
