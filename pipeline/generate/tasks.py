"""Expand manifests into clip tasks with deterministic keys, in key order.

Keys come from the resolved clips (`<manifest_sha256[:12]>_<scene>_<clip_index:05d>`, see
docs/architecture.md). Tasks are sorted by key so the order (and therefore shard layout)
does not depend on the order manifests were given on the command line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError


@dataclass
class ClipTask:
    key: str
    clip: dict[str, Any]          # the ResolvedClip
    manifest_path: str
    order: int = 0                # position in key order: the writer's sequence number
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ManifestInfo:
    path: str
    name: str
    sha256: str                   # the manifest's own hash (the key prefix)
    resolved_sha256: str          # covers the manifest hash and every resolved clip hash
    resolved: dict[str, str]      # key -> resolved clip sha256
    backend: str = "procedural"   # renderer.backend of the manifest
    endpoints: tuple[str, ...] = ()  # renderer.endpoints of the manifest


def expand_manifests(paths: list[Path]) -> tuple[list[ClipTask], list[ManifestInfo]]:
    from pipeline.manifest import clip_sha256, resolve_manifest

    tasks: list[ClipTask] = []
    infos: list[ManifestInfo] = []
    seen: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: manifest not found", hint="pass the path of a scene manifest YAML")
        resolved = resolve_manifest(path)
        name = str(getattr(getattr(resolved, "manifest", None), "name", "") or path.stem)
        hashes: dict[str, str] = {}
        for clip in resolved.clips:
            key = clip["key"]
            if key in seen:
                raise UserError(
                    f"{path}: clip key {key} is also produced by {seen[key]}",
                    hint="pass each manifest once, or give the scenes different names",
                )
            seen[key] = str(path)
            hashes[key] = clip.get("sha256") or clip_sha256(clip)
            tasks.append(ClipTask(key=key, clip=clip, manifest_path=str(path)))
        renderer = getattr(getattr(resolved, "manifest", None), "renderer", None)
        infos.append(ManifestInfo(path=str(path), name=name, sha256=resolved.manifest_sha256,
                                  resolved_sha256=resolved.sha256, resolved=hashes,
                                  backend=str(getattr(renderer, "backend", "procedural")),
                                  endpoints=tuple(getattr(renderer, "endpoints", ()) or ())))
    tasks.sort(key=lambda task: task.key)
    for order, task in enumerate(tasks):
        task.order = order
    return tasks, infos


def render_endpoints(infos: list[ManifestInfo], command_line: list[str]) -> list[str]:
    """Endpoints to render on: the command line's, else those the manifests list.

    A manifest for the Unreal backend cannot fall back to procedural servers: the procedural
    renderer cannot load an Unreal level, so that is a user error to fix before anything runs.
    """
    if command_line:
        return list(command_line)
    endpoints: list[str] = []
    for info in infos:
        endpoints.extend(e for e in info.endpoints if e not in endpoints)
    if not endpoints:
        for info in infos:
            if info.backend == "unreal":
                raise UserError(
                    f"{info.path}: renderer.backend is unreal but no render endpoint is given",
                    hint="start the Unreal render server (docs/unreal.md) and list it under renderer.endpoints "
                         "or pass --endpoint HOST:PORT",
                )
    return endpoints
